#!/usr/bin/env bash
# SoulBox VM harness: run a command inside a qemu guest booted with a stock
# Debian 12 kernel and a pure cgroup v2 hierarchy. The guest's root is the
# host's / shared read-only over 9p with a tmpfs overlay on top.
#
#   scripts/vm/run.sh [options] -- CMD [ARGS...]
#
# See scripts/vm/README.md. Exit status: CMD's exit status, or
#   124  timeout (qemu killed)
#   125  harness / boot failure
set -uo pipefail

SELF_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
GUEST_INIT="$SELF_DIR/guest-init.sh"

MEM=2G
CPUS=2
TIMEOUT=600
ACCEL=${SOULBOX_VM_ACCEL:-auto}  # auto | kvm | tcg
BOOT_TIMEOUT_KVM=30              # seconds until the guest init must say hello
CGROUP=""
VERBOSE=0
EXTRA_ENV=()
EXPOSE=()

usage() {
	cat <<'EOF'
usage: scripts/vm/run.sh [options] -- CMD [ARGS...]

Runs CMD as root inside a qemu guest (stock Debian 12 kernel, pure cgroup v2,
host / as a read-only 9p lower layer under a tmpfs overlay). CMD's output is
streamed to stdout (stdout and stderr merged); the exit status is CMD's.

options:
  --mem SIZE        guest memory (default 2G)
  --cpus N          guest vCPUs (default 2)
  --timeout SECS    whole-run timeout incl. boot (default 600); exit 124
  --accel MODE      auto (default: KVM if it works, else TCG), kvm, tcg
  --cgroup PATH     run CMD in this cgroup (e.g. /system.slice/t.service),
                    controllers enabled on every ancestor; default: root
  --env NAME=VALUE  set an extra variable in CMD's environment (repeatable)
  --env NAME        pass NAME through from the caller's environment
  --expose PATH     show host PATH under /tmp in the guest (repeatable; the
                    cwd and the command's own path are exposed by default);
                    the guest's /tmp is otherwise a fresh tmpfs
  -v, --verbose     show kernel/init messages and qemu's stderr
  -h, --help        this text
environment: SOULBOX_VM_CACHE (cache dir), SOULBOX_VM_ACCEL (default --accel)
EOF
}

die() { echo "soulbox-vm: error: $*" >&2; exit 125; }
info() { echo "soulbox-vm: $*" >&2; }
vinfo() { [ "$VERBOSE" = 1 ] && info "$@"; return 0; }

while [ $# -gt 0 ]; do
	case "$1" in
	--mem) MEM=${2:?}; shift 2 ;;
	--mem=*) MEM=${1#*=}; shift ;;
	--cpus) CPUS=${2:?}; shift 2 ;;
	--cpus=*) CPUS=${1#*=}; shift ;;
	--timeout) TIMEOUT=${2:?}; shift 2 ;;
	--timeout=*) TIMEOUT=${1#*=}; shift ;;
	--accel) ACCEL=${2:?}; shift 2 ;;
	--accel=*) ACCEL=${1#*=}; shift ;;
	--cgroup) CGROUP=${2:?}; shift 2 ;;
	--cgroup=*) CGROUP=${1#*=}; shift ;;
	--expose) EXPOSE+=("${2:?}"); shift 2 ;;
	--expose=*) EXPOSE+=("${1#*=}"); shift ;;
	--env) EXTRA_ENV+=("${2:?}"); shift 2 ;;
	--env=*) EXTRA_ENV+=("${1#*=}"); shift ;;
	-v | --verbose) VERBOSE=1; shift ;;
	-h | --help) usage; exit 0 ;;
	--) shift; break ;;
	*) usage >&2; die "unknown option '$1' (put the command after --)" ;;
	esac
done
[ $# -gt 0 ] || { usage >&2; die "no command given"; }
[[ "$CPUS" =~ ^[1-9][0-9]*$ ]] || die "--cpus must be a positive integer"
[[ "$TIMEOUT" =~ ^[1-9][0-9]*$ ]] || die "--timeout must be a positive integer (seconds)"
[[ "$MEM" =~ ^[1-9][0-9]*[MGmg]?$ ]] || die "--mem must look like 2G or 2048M"
case "$ACCEL" in auto | kvm | tcg) ;; *) die "--accel must be auto, kvm or tcg" ;; esac
[ -z "$CGROUP" ] || [[ "$CGROUP" =~ ^/[A-Za-z0-9_./@:-]+$ ]] || die "bad --cgroup path"
[ "$(id -u)" = 0 ] || die "must run as root (installs packages, shares / with the guest)"
[ -r "$GUEST_INIT" ] || die "missing $GUEST_INIT"

# ---------------------------------------------------------------- cache ---
if [ -n "${SOULBOX_VM_CACHE:-}" ]; then
	CACHE=$SOULBOX_VM_CACHE
elif [ -w /var/cache ]; then
	CACHE=/var/cache/soulbox-vm
else
	CACHE=${XDG_CACHE_HOME:-$HOME/.cache}/soulbox-vm
fi
mkdir -p "$CACHE" || die "cannot create cache dir $CACHE"
exec 9>"$CACHE/.lock"
flock 9 || die "cannot lock $CACHE/.lock"  # held during setup only

# ------------------------------------------------------------- packages ---
APT_UPDATED=0
apt_update_once() {
	[ "$APT_UPDATED" = 1 ] && return 0
	info "apt-get update"
	apt-get update -qq >&2 || info "warning: apt-get update failed"
	APT_UPDATED=1
}
ensure_pkgs() {
	local missing=() p
	for p in "$@"; do
		dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	info "installing ${missing[*]}"
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2; then
		apt_update_once
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2 ||
			die "apt-get install ${missing[*]} failed"
	fi
}
ensure_pkgs qemu-system-x86 busybox-static cpio gzip xz-utils util-linux coreutils

# --------------------------------------------------------------- kernel ---
# The newest cached kernel, for offline use.
cached_kver() {
	find "$CACHE/kernels" -mindepth 1 -maxdepth 1 -name '[0-9]*' -printf '%f\n' 2>/dev/null | sort -V | tail -n1
}
# "linux-image-6.1.0-NN-amd64" that linux-image-amd64 currently depends on.
apt_kpkg() {
	apt-cache depends linux-image-amd64 2>/dev/null |
		sed -n 's/^ *Depends: \(linux-image-[0-9][^ ]*-amd64\)$/\1/p' | head -n1
}
KPKG=${SOULBOX_VM_KERNEL_PKG:-$(apt_kpkg)}
if [ -z "$KPKG" ] && [ -z "$(cached_kver)" ]; then
	apt_update_once
	KPKG=$(apt_kpkg)
fi
if [ -n "$KPKG" ]; then
	KVER=${KPKG#linux-image-}
else
	KVER=$(cached_kver)
	[ -n "$KVER" ] || die "cannot determine the Debian kernel package (apt-cache depends linux-image-amd64)"
	vinfo "apt has no kernel candidate; using cached $KVER"
fi
KDIR=$CACHE/kernels/$KVER

# Modules the init loads; dependencies are added from each .ko's modinfo.
WANT_MODULES="virtio_pci virtio_rng 9pnet_virtio 9p overlay"

# The .deb is kept in the cache so a changed module list needs no network.
prepare_kernel() {
	local tmp deb modroot
	deb=$CACHE/debs/${KPKG}.deb
	if [ ! -s "$deb" ]; then
		mkdir -p "$CACHE/debs"
		tmp=$(mktemp -d "$CACHE/.dl.XXXXXX") || die "mktemp"
		chown _apt "$tmp" 2>/dev/null || true  # lets apt drop privileges
		info "fetching kernel package $KPKG (not installed on the host)"
		(cd "$tmp" && apt-get download "$KPKG" >&2) || { rm -rf "$tmp"; return 1; }
		mv "$(find "$tmp" -maxdepth 1 -name '*.deb' | head -n1)" "$deb" || { rm -rf "$tmp"; return 1; }
		rm -rf "$tmp"
		# Keep only the current kernel package.
		find "$CACHE/debs" -name 'linux-image-*.deb' ! -name "$(basename "$deb")" -delete
	fi
	tmp=$(mktemp -d "$CACHE/.kernel.XXXXXX") || die "mktemp"
	mkdir -p "$tmp/x"
	dpkg-deb -x "$deb" "$tmp/x" || { rm -rf "$tmp"; return 1; }
	modroot="$tmp/x/lib/modules/$KVER"
	[ -f "$tmp/x/boot/vmlinuz-$KVER" ] && [ -d "$modroot" ] || { rm -rf "$tmp"; return 1; }
	mkdir -p "$tmp/k/modules"
	cp "$tmp/x/boot/vmlinuz-$KVER" "$tmp/k/vmlinuz"
	cp "$tmp/x/boot/config-$KVER" "$tmp/k/config"
	cp "$modroot/modules.builtin" "$tmp/k/"
	# Resolve the wanted modules and their dependencies, deps first.
	declare -A path=() seen=()
	local f n order=()
	while IFS= read -r f; do
		n=$(basename "$f" .ko)
		path[${n//-/_}]=$f
	done < <(find "$modroot/kernel" -name '*.ko')
	builtin_mod() { grep -q "/$1.ko\$" "$modroot/modules.builtin" || grep -q "/${1//_/-}.ko\$" "$modroot/modules.builtin"; }
	visit() {
		local m=${1//-/_} d deps
		[ -n "${seen[$m]:-}" ] && return 0
		seen[$m]=1
		if [ -z "${path[$m]:-}" ]; then
			builtin_mod "$m" && return 0
			echo "soulbox-vm: module $m not found in $KPKG" >&2
			return 1
		fi
		deps=$(tr '\0' '\n' <"${path[$m]}" | sed -n 's/^depends=//p' | head -n1)
		for d in ${deps//,/ }; do visit "$d" || return 1; done
		cp "${path[$m]}" "$tmp/k/modules/$m.ko"
		order+=("$m")
	}
	for n in $WANT_MODULES; do visit "$n" || { rm -rf "$tmp"; return 1; }; done
	printf '%s\n' "${order[@]}" >"$tmp/k/modules.order"
	printf '%s\n' "$WANT_MODULES" >"$tmp/k/wanted"
	mkdir -p "$CACHE/kernels"
	rm -rf "$KDIR"
	mv "$tmp/k" "$KDIR"
	rm -rf "$tmp"
}

kernel_ready() { [ -f "$KDIR/modules.order" ] && [ "$(cat "$KDIR/wanted" 2>/dev/null)" = "$WANT_MODULES" ]; }
if ! kernel_ready && { [ -z "$KPKG" ] || ! prepare_kernel; } && [ -z "${SOULBOX_VM_KERNEL_PKG:-}" ] && [ "$APT_UPDATED" = 0 ]; then
	# A stale package list may name a kernel the archive no longer has.
	apt_update_once
	KPKG=$(apt_kpkg)
	if [ -n "$KPKG" ]; then
		KVER=${KPKG#linux-image-}
		KDIR=$CACHE/kernels/$KVER
	fi
fi
if ! kernel_ready; then
	if [ -z "$KPKG" ] || ! prepare_kernel; then
		fallback=$(cached_kver)
		[ -n "$fallback" ] && [ -f "$CACHE/kernels/$fallback/modules.order" ] || die "could not download/extract $KPKG"
		info "warning: could not fetch $KPKG; using cached kernel $fallback"
		KVER=$fallback
		KDIR=$CACHE/kernels/$KVER
	fi
fi

# Uncompressed ELF vmlinux: qemu boots it via PVH, skipping the real-mode
# setup and the in-guest xz decompression (~3 s under TCG).
if [ ! -f "$KDIR/vmlinux" ] && [ ! -f "$KDIR/vmlinux.none" ]; then
	off=$(LC_ALL=C grep -obUa $'\xfd7zXZ' "$KDIR/vmlinuz" 2>/dev/null | head -n1 | cut -d: -f1)
	[ -n "$off" ] && { tail -c +$((off + 1)) "$KDIR/vmlinuz" | xz -dc --single-stream >"$KDIR/vmlinux.tmp"; } 2>/dev/null
	if [ -n "$off" ] && [ "$(head -c 4 "$KDIR/vmlinux.tmp" | od -An -c | tr -d ' ')" = '177ELF' ]; then
		mv "$KDIR/vmlinux.tmp" "$KDIR/vmlinux"
	else
		rm -f "$KDIR/vmlinux.tmp"
		: >"$KDIR/vmlinux.none"  # not xz or no ELF: boot the bzImage
	fi
fi
if [ -f "$KDIR/vmlinux" ]; then KERNEL=$KDIR/vmlinux; else KERNEL=$KDIR/vmlinuz; fi

# ------------------------------------------------------------ initramfs ---
BUSYBOX=/bin/busybox
[ -x "$BUSYBOX" ] || die "busybox-static is not at $BUSYBOX"
KEY=$( {
	cat "$GUEST_INIT" "$KDIR/modules.order"
	dpkg-query -W -f='${Version}' busybox-static
} | sha256sum | cut -c1-16)
INITRD=$CACHE/initramfs/$KVER-$KEY.cpio.gz
if [ ! -f "$INITRD" ]; then
	info "building initramfs for $KVER"
	ird=$(mktemp -d "$CACHE/.initrd.XXXXXX") || die "mktemp"
	mkdir -p "$ird"/{bin,dev,proc,sys,mnt,lib/modules}
	cp "$BUSYBOX" "$ird/bin/busybox"
	cp "$GUEST_INIT" "$ird/init"
	chmod 0755 "$ird/init" "$ird/bin/busybox"
	ln -s busybox "$ird/bin/sh"
	cp "$KDIR"/modules/*.ko "$ird/lib/modules/"
	cp "$KDIR/modules.order" "$ird/modules.order"
	mknod -m 600 "$ird/dev/console" c 5 1
	mknod -m 666 "$ird/dev/null" c 1 3
	mkdir -p "$CACHE/initramfs"
	(cd "$ird" && find . -print0 | sort -z | cpio --null -o -H newc --quiet | gzip -1) >"$INITRD.tmp" ||
		{ rm -rf "$ird" "$INITRD.tmp"; die "cpio failed"; }
	mv "$INITRD.tmp" "$INITRD"
	rm -rf "$ird"
	# Drop stale initramfs images of this kernel.
	find "$CACHE/initramfs" -name "$KVER-*.cpio.gz" ! -name "$(basename "$INITRD")" -delete 2>/dev/null
fi
flock -u 9
exec 9>&-

# ---------------------------------------------------------- per-run data ---
RUN=$(mktemp -d "${TMPDIR:-/tmp}/soulbox-vm.XXXXXX") || die "mktemp"
QPID=""  # the subshell that runs qemu; qemu's own pid is in $RUN/qemu.pid
kill_qemu() {
	local qp
	qp=$(cat "$RUN/qemu.pid" 2>/dev/null || true)
	[ -n "$qp" ] && kill -"$1" "$qp" 2>/dev/null
	return 0
}
cleanup() {
	[ -n "$QPID" ] && kill_qemu KILL
	rm -rf "$RUN"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
mkdir -p "$RUN/share"
NONCE=$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')
CWD=$(pwd -P)
printf '%s' "$NONCE" >"$RUN/share/nonce"
printf '%s' "$CWD" >"$RUN/share/cwd"
printf '%s' "$CGROUP" >"$RUN/share/cgroup"
if [ "$VERBOSE" = 1 ]; then printf 0 >"$RUN/share/quiet"; else printf 1 >"$RUN/share/quiet"; fi
# Host paths under /tmp to show in the guest (whose /tmp is a fresh tmpfs).
{
	printf '%s\n' "$CWD"
	cmd_path=$1
	[[ "$cmd_path" == */* ]] || cmd_path=$(type -P -- "$1" 2>/dev/null || true)
	[ -n "$cmd_path" ] && realpath -e -- "$cmd_path" 2>/dev/null
	for p in ${EXPOSE[@]+"${EXPOSE[@]}"}; do
		realpath -e -- "$p" 2>/dev/null || info "warning: --expose $p: no such path"
	done
} >"$RUN/share/expose"

host_go_env() { command -v go >/dev/null 2>&1 && go env "$1" 2>/dev/null; }
{
	echo '# generated by scripts/vm/run.sh'
	guest_path=$PATH
	case ":$guest_path:" in *:/usr/local/go/bin:*) ;; *) guest_path=$guest_path:/usr/local/go/bin ;; esac
	case ":$guest_path:" in *:/usr/sbin:*) ;; *) guest_path=/usr/sbin:$guest_path ;; esac
	printf 'export PATH=%q\n' "$guest_path"
	echo 'export HOME=/root USER=root LOGNAME=root SHELL=/bin/bash TERM=dumb LANG=C.UTF-8 TMPDIR=/tmp'
	echo 'export SOULBOX_VM=1'
	# Go: the host's caches are visible through the overlay and writable
	# there (writes land in the guest's tmpfs upper and vanish at poweroff).
	for v in GOCACHE GOMODCACHE GOPATH; do
		val=$(host_go_env "$v")
		[ -n "$val" ] && printf 'export %s=%q\n' "$v" "$val"
	done
	echo 'export GOTOOLCHAIN=local GOPROXY=off'
	for v in CI CGO_ENABLED GOFLAGS GOPROXY GOTOOLCHAIN GOEXPERIMENT GODEBUG GOTRACEBACK GOMAXPROCS; do
		[ -n "${!v+x}" ] && printf 'export %s=%q\n' "$v" "${!v}"
	done
	for e in ${EXTRA_ENV[@]+"${EXTRA_ENV[@]}"}; do
		name=${e%%=*}
		[[ "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || die "bad --env '$e'"
		if [[ "$e" == *=* ]]; then
			printf 'export %s=%q\n' "$name" "${e#*=}"
		elif [ -n "${!name+x}" ]; then
			printf 'export %s=%q\n' "$name" "${!name}"
		fi
	done
	printf 'cd %q || exit 125\n' "$CWD"
	printf 'exec'
	printf ' %q' "$@"
	printf '\n'
} >"$RUN/share/cmd.sh"

# ----------------------------------------------------------------- boot ---
KVM_NOTE=$CACHE/kvm-unusable
CMDLINE="console=ttyS0 panic=-1 rdinit=/init systemd.unified_cgroup_hierarchy=1 cgroup_no_v1=all"
CMDLINE+=" i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd tsc=reliable no_timer_check mitigations=off"
BIOS_ARGS=()
[ -f /usr/share/qemu/qboot.rom ] && BIOS_ARGS=(-bios /usr/share/qemu/qboot.rom)  # faster, silent firmware
if [ "$VERBOSE" = 1 ]; then CMDLINE+=" loglevel=7"; else CMDLINE+=" quiet loglevel=1"; fi

kvm_usable() {
	[ -c /dev/kvm ] && [ -r /dev/kvm ] && [ -w /dev/kvm ] || return 1
	# PVM ("kvm_pvm") only runs PVM-enabled guest kernels; a stock Debian
	# kernel hangs or qemu aborts on MSR 0x10a. Go straight to TCG.
	[ -d /sys/module/kvm_pvm ] && return 1
	# Remember a failed KVM boot for this host kernel + qemu, to skip the retry.
	[ -f "$KVM_NOTE" ] && [ "$(cat "$KVM_NOTE")" = "$(kvm_note_key)" ] && return 1
	return 0
}
kvm_note_key() { echo "$(uname -r) $(dpkg-query -W -f='${Version}' qemu-system-x86) $KVER"; }

START_NS=$(date +%s%N)
DEADLINE=$(($(date +%s) + TIMEOUT))

# run_qemu ACCEL -> sets RESULT: done | bootfail | timeout | noboot
run_qemu() {
	local accel=$1 accel_args log fifo t0 booted=0 boot_deadline now
	if [ "$accel" = kvm ]; then
		accel_args=(-accel kvm -cpu host)
	else
		# shellcheck disable=SC2054 # commas are qemu's
		accel_args=(-accel tcg,thread=multi -cpu max)
	fi
	log=$RUN/console.$accel.log
	fifo=$RUN/console.$accel.fifo
	rm -f "$RUN/share/exitcode"
	mkfifo "$fifo"
	: >"$log"
	# Stream: console -> log (for the markers) -> stdout minus harness lines.
	tee -a "$log" <"$fifo" |
		if [ "$VERBOSE" = 1 ]; then
			sed -u -e '/^$/N' -e '/^\n\?@@SOULBOX-VM-EXIT /d'
		else
			# Hide firmware/kernel lines before init and after the exit marker.
			sed -u -e '0,/@@SOULBOX-VM-BOOTED@@/d' -e '/^$/N' -e '/^\n\?@@SOULBOX-VM-EXIT /,$d'
		fi &
	local spid=$!
	t0=$(date +%s%N)
	rm -f "$RUN/qemu.pid" "$RUN/qemu.rc"
	# In a subshell so that bash does not report qemu dying of a signal.
	(
	qemu-system-x86_64 -pidfile "$RUN/qemu.pid" \
		-name soulbox-vm -nodefaults -no-user-config -nographic -no-reboot \
		-M pc "${BIOS_ARGS[@]}" "${accel_args[@]}" -smp "$CPUS" -m "$MEM" \
		-kernel "$KERNEL" -initrd "$INITRD" -append "$CMDLINE" \
		-chardev stdio,id=con0,signal=off -serial chardev:con0 -monitor none \
		-fsdev local,id=fsroot,path=/,security_model=none,readonly=on,multidevs=remap \
		-device virtio-9p-pci,fsdev=fsroot,mount_tag=hostroot \
		-fsdev local,id=fsrun,path="$RUN/share",security_model=none \
		-device virtio-9p-pci,fsdev=fsrun,mount_tag=soulboxrun \
		-device virtio-rng-pci \
		</dev/null >"$fifo" 2>"$RUN/qemu.$accel.err"
	echo $? >"$RUN/qemu.rc"
	) 2>/dev/null &
	QPID=$!
	boot_deadline=$(($(date +%s) + BOOT_TIMEOUT_KVM))
	RESULT=""
	while kill -0 "$QPID" 2>/dev/null; do
		now=$(date +%s)
		if [ "$booted" = 0 ] && grep -q '@@SOULBOX-VM-BOOTED@@' "$log"; then
			booted=1
			BOOT_MS=$((($(date +%s%N) - t0) / 1000000))
		fi
		if [ "$now" -ge "$DEADLINE" ]; then
			RESULT=timeout
			break
		fi
		if [ "$accel" = kvm ] && [ "$booted" = 0 ] && [ "$now" -ge "$boot_deadline" ]; then
			RESULT=noboot
			break
		fi
		sleep 0.05
	done
	if [ -n "$RESULT" ]; then
		kill_qemu TERM
		sleep 0.5
		kill_qemu KILL
	fi
	wait "$QPID" 2>/dev/null
	QRC=$(cat "$RUN/qemu.rc" 2>/dev/null || echo "?")
	QPID=""
	wait "$spid" 2>/dev/null
	[ "$booted" = 0 ] && grep -q '@@SOULBOX-VM-BOOTED@@' "$log" && booted=1 &&
		BOOT_MS=$((($(date +%s%N) - t0) / 1000000))
	if [ -z "$RESULT" ]; then
		if grep -q '@@SOULBOX-VM-BOOTFAIL@@' "$log"; then RESULT=bootfail
		elif [ "$booted" = 0 ]; then RESULT=noboot
		else RESULT="done"; fi
	fi
	LOG=$log
}

BOOT_MS=""
USED=""
if [ "$ACCEL" = kvm ] || { [ "$ACCEL" = auto ] && kvm_usable; }; then
	USED=kvm
	run_qemu kvm
	if [ "$RESULT" = noboot ] && [ "$ACCEL" = auto ]; then
		info "KVM boot failed (qemu rc $QRC: $(tail -n1 "$RUN/qemu.kvm.err" 2>/dev/null)); falling back to TCG"
		kvm_note_key >"$KVM_NOTE"
		USED=tcg
		run_qemu tcg
	fi
else
	USED=tcg
	run_qemu tcg
fi
TOTAL_MS=$((($(date +%s%N) - START_NS) / 1000000))

report() {
	vinfo "accel=$USED boot(init reached)=${BOOT_MS:-?}ms total=${TOTAL_MS}ms kernel=$KVER"
	[ -n "${SOULBOX_VM_STATS:-}" ] && echo "accel=$USED boot_ms=${BOOT_MS:-} total_ms=$TOTAL_MS kernel=$KVER" >>"$SOULBOX_VM_STATS"
	return 0
}
report

show_qemu_err() {
	local f=$RUN/qemu.$USED.err
	[ -s "$f" ] && { info "qemu stderr:"; sed 's/^/  /' "$f" >&2; }
}
case "$RESULT" in
timeout)
	info "timeout after ${TIMEOUT}s (accel=$USED); qemu killed"
	exit 124
	;;
bootfail | noboot)
	info "guest failed to boot (accel=$USED, qemu rc $QRC)"
	show_qemu_err
	[ "$VERBOSE" = 1 ] || { info "last console lines:"; tail -n 20 "$LOG" | sed 's/^/  /' >&2; }
	exit 125
	;;
esac

rc=""
if [ -f "$RUN/share/exitcode" ]; then
	rc=$(tr -dc '0-9' <"$RUN/share/exitcode")
fi
if [ -z "$rc" ]; then
	rc=$(sed -n "s/^@@SOULBOX-VM-EXIT $NONCE \([0-9]*\)@@.*/\1/p" "$LOG" | tail -n1)
fi
if [ -z "$rc" ]; then
	info "guest ended without reporting an exit status (accel=$USED, qemu rc $QRC): crash or panic?"
	show_qemu_err
	exit 125
fi
[ "$VERBOSE" = 1 ] && show_qemu_err
exit "$rc"

#!/bin/busybox sh
# SoulBox VM harness: guest init. Runs inside the qemu guest, never on the host.
#
# Stage 1 (PID 1 from the initramfs, no arguments):
#   load modules, mount the host's / (9p, read-only) + a tmpfs upper as an
#   overlay root, mount the API filesystems (cgroup2 only, no v1), then
#   switch_root into the overlay and re-exec this script as stage 2.
# Stage 2 (PID 1 inside the new root, argument "stage2"):
#   run the per-run command script from the "soulboxrun" 9p share, record the
#   exit status there, print the exit marker and power off.
#
# Per-run inputs (written by run.sh into the soulboxrun share):
#   nonce    unique marker token            cwd      caller's cwd
#   expose   host paths under /tmp to show at the same path (one a line)
#   cgroup   cgroup path to run in ("" = /) cmd.sh   bash script: env, cd, exec
#   quiet    "1" to keep init silent
# run.sh builds this file into a cached initramfs keyed by its hash.

BB=/bin/busybox
RUNSHARE=/run/soulbox/share

stage1() {
	$BB mkdir -p /proc /sys /dev /bin /sbin
	$BB --install -s /bin
	export PATH=/bin:/sbin
	mount -t proc proc /proc
	mount -t sysfs sysfs /sys
	mount -t devtmpfs devtmpfs /dev
	echo "@@SOULBOX-VM-BOOTED@@"

	fail() {
		echo "soulbox-vm: init: $*" >&2
		echo "@@SOULBOX-VM-BOOTFAIL@@"
		poweroff -f
		sleep 5
		exit 1
	}

	# Modules, in dependency order (computed on the host).
	while read -r m; do
		[ -n "$m" ] || continue
		insmod "/lib/modules/$m.ko" || fail "insmod $m failed"
	done </modules.order

	mkdir -p /mnt/host /mnt/run /mnt/rw /newroot
	# 9p transport appears once virtio-pci has probed; normally immediate.
	i=0
	until mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=loose,ro hostroot /mnt/host 2>/dev/null; do
		i=$((i + 1))
		[ $i -lt 50 ] || fail "cannot mount hostroot 9p share"
		sleep 0.1
	done
	mount -t 9p -o trans=virtio,version=9p2000.L,msize=524288,cache=none soulboxrun /mnt/run ||
		fail "cannot mount soulboxrun 9p share"

	quiet=$(cat /mnt/run/quiet 2>/dev/null)
	log() { [ "$quiet" = 1 ] || echo "soulbox-vm: init[$(cut -d" " -f1 /proc/uptime)]: $*"; }
	log "modules loaded, shares mounted"

	# Writable overlay root: lower = host / over 9p, upper = tmpfs.
	mount -t tmpfs -o mode=0755,size=90% tmpfs /mnt/rw || fail "tmpfs"
	mkdir -p /mnt/rw/upper /mnt/rw/work
	mount -t overlay overlay \
		-o lowerdir=/mnt/host,upperdir=/mnt/rw/upper,workdir=/mnt/rw/work \
		/newroot || fail "overlay root mount failed"

	R=/newroot
	# Keep the overlay view of the host's /tmp reachable before masking it.
	mount -t tmpfs -o mode=0755,nosuid,nodev tmpfs $R/run || fail "tmpfs /run"
	mkdir -p $R/run/soulbox/hosttmp $R/run/soulbox/host $R/run/soulbox/share
	mount --bind $R/tmp $R/run/soulbox/hosttmp
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/tmp || fail "tmpfs /tmp"
	# Host paths under /tmp that the caller needs (its cwd, the command,
	# --expose) appear at the same path: overlay-backed, i.e. host content
	# with writes kept in the guest.
	while IFS= read -r p; do
		case "$p" in /tmp/?*) ;; *) continue ;; esac
		src="$R/run/soulbox/hosttmp/${p#/tmp/}"
		if [ -d "$src" ]; then
			mkdir -p "$R$p"
		elif [ -e "$src" ]; then
			mkdir -p "$(dirname "$R$p")"
			[ -e "$R$p" ] || : >"$R$p"
		else
			continue
		fi
		mount --bind "$src" "$R$p" || log "cannot expose $p"
	done </mnt/run/expose
	mount -t proc -o nosuid,nodev,noexec proc $R/proc || fail "proc"
	mount -t sysfs -o nosuid,nodev,noexec sysfs $R/sys || fail "sysfs"
	mount -t devtmpfs -o mode=0755,nosuid devtmpfs $R/dev || fail "devtmpfs"
	mkdir -p $R/dev/pts $R/dev/shm $R/dev/mqueue
	mount -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts $R/dev/pts
	mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs $R/dev/shm
	mount -t mqueue mqueue $R/dev/mqueue 2>/dev/null
	# Pure cgroup v2 (kernel cmdline also has cgroup_no_v1=all).
	mount -t cgroup2 -o nsdelegate,memory_recursiveprot cgroup2 $R/sys/fs/cgroup 2>/dev/null ||
		mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fail "cgroup2 mount failed"
	# Enable every available controller at the root, as systemd hosts do.
	# Everything stays in the root cgroup, which is exempt from the
	# "no internal processes" rule; stage 2 moves the command into
	# a leaf if a cgroup path was requested.
	for c in $(cat $R/sys/fs/cgroup/cgroup.controllers); do
		echo "+$c" >$R/sys/fs/cgroup/cgroup.subtree_control 2>/dev/null ||
			log "could not enable controller $c"
	done
	mount -t securityfs securityfs $R/sys/kernel/security 2>/dev/null
	mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
	mount -t bpf -o mode=0700 bpf $R/sys/fs/bpf 2>/dev/null

	hostname soulbox-vm
	ip link set lo up 2>/dev/null

	mount --move /mnt/host $R/run/soulbox/host
	mount --move /mnt/run $R$RUNSHARE
	mkdir -p $R/run/soulbox/bin
	cp /bin/busybox $R/run/soulbox/bin/busybox
	cp /init $R/run/soulbox/bin/init
	log "switching root"
	exec switch_root $R /run/soulbox/bin/busybox sh /run/soulbox/bin/init stage2
	fail "switch_root failed"
}

stage2() {
	BB=/run/soulbox/bin/busybox
	nonce=$($BB cat $RUNSHARE/nonce)
	cg=$($BB cat $RUNSHARE/cgroup 2>/dev/null)
	# Like a systemd host: shared propagation on /.
	$BB mount --make-rshared /
	# Serial console: no \n -> \r\n translation, so output is byte-exact.
	$BB stty -F /dev/console -onlcr 2>/dev/null
	echo 1 >/proc/sys/kernel/printk 2>/dev/null

	if [ -n "$cg" ]; then
		# Move into a leaf cgroup (e.g. /system.slice/test.service), enabling
		# the controllers on each ancestor, to mimic a systemd service.
		ctrls=$($BB cat /sys/fs/cgroup/cgroup.controllers)
		p=/sys/fs/cgroup
		rest=${cg#/}
		while [ -n "$rest" ]; do
			part=${rest%%/*}
			if [ "$part" = "$rest" ]; then rest=""; else rest=${rest#*/}; fi
			[ -n "$part" ] || continue
			$BB mkdir -p "$p/$part"
			if [ -n "$rest" ]; then
				for c in $ctrls; do echo "+$c" >"$p/$part/cgroup.subtree_control" 2>/dev/null; done
			fi
			p="$p/$part"
		done
		echo $$ >"$p/cgroup.procs" || echo "soulbox-vm: cannot join cgroup $cg" >&2
	fi

	$BB env -i /bin/bash $RUNSHARE/cmd.sh </dev/null >/dev/console 2>&1
	rc=$?
	# If PID 1 leaves the leaf, nothing else to clean: we power off.
	echo "$rc" >$RUNSHARE/exitcode
	$BB sync
	printf '\n@@SOULBOX-VM-EXIT %s %s@@\n' "$nonce" "$rc"
	$BB poweroff -f
	$BB sleep 10
}

case "$1" in
stage2) stage2 ;;
*) stage1 ;;
esac

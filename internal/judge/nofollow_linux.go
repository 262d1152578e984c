package judge

import "golang.org/x/sys/unix"

const syscallNoFollow = unix.O_NOFOLLOW | unix.O_CLOEXEC

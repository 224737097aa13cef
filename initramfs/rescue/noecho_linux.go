package rescue

import "golang.org/x/sys/unix"

// noEcho turns a terminal's echo off, keeping its line editing (ICANON).
func noEcho(fd int) {
	t, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return
	}
	t.Lflag &^= unix.ECHO
	t.Lflag |= unix.ICANON | unix.ECHONL
	_ = unix.IoctlSetTermios(fd, unix.TCSETS, t)
}

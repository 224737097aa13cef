// Package tftp serves first-stage loaders (iPXE binaries) over TFTP, and
// nothing else: reads only, from a fixed list of file names, through os.Root
// so that no path can leave the folder. Kernels and initramfs go over HTTP.
package tftp

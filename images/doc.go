// Package images decides what goes into lifeboat's RAM image: which Debian
// kernel package, which modules (with their dependencies), and the manifest
// of built artefacts with their sha256. It runs at build time only.
package images

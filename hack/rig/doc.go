// Package rig starts lifeboatd with a generated inventory inside a fresh
// network namespace, for the end-to-end tests and the demo: one place that
// knows how the pieces of a test site fit together.
package rig

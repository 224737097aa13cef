// Package kind holds the typed words every part of lifeboat speaks: a
// host's mode, a boot's firmware, a rescue grant's scope, state and policy.
// The store, both wire protocols (the agent's and the operator API) and
// the RAM image use these types, so that each word has one definition. It
// imports nothing, so the RAM image can link it.
package kind

// Package archtest holds the test that keeps the import rules of
// docs/architecture.md true: which of this module's packages each package
// may import. It has no code of its own.
package archtest

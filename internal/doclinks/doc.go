// Package doclinks holds the tests that keep the project's Markdown
// navigable and true to the tree: every relative link in README.md,
// SECURITY.md, the Helm chart's README and docs/*.md names a file of the
// repository, every #anchor names a heading of the page it points to (as
// GitHub spells heading anchors), every page of docs/ is linked from
// README.md, and the package map of docs/development.md names every
// directory holding Go code and nothing that does not exist. It reads files
// only, never the network, and has no code of its own outside its tests; it
// is not a Markdown parser for anything else.
package doclinks

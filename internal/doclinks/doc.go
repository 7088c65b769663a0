// Package doclinks holds the test that keeps the project's Markdown
// navigable: every relative link in README.md, SECURITY.md and docs/*.md
// names a file of the repository, every #anchor names a heading of the
// page it points to (as GitHub spells heading anchors), and every page of
// docs/ is linked from README.md. It reads files only, never the network,
// and has no code of its own outside its test; it is not a Markdown parser
// for anything else.
package doclinks

// Package stdlib holds the Starlark modules scripts load as
// load("@stdlib/NAME.star", ...).
package stdlib

import "embed"

// FS holds the modules, at their names without "@stdlib/".
//
//go:embed *.star
var FS embed.FS

//go:build !race

package runtime

// raceDetector: the tests run under the race detector, which slows the
// interpreter tenfold and more.
const raceDetector = false

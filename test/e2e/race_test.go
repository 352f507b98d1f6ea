//go:build race

package e2e

// raceEnabled is true when the tests run with -race; the gateway under test
// is then built with -race too, so data races in it fail the tests.
const raceEnabled = true

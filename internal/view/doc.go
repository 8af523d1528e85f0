// Package view draws Herald's objects as text: a FirmwareRollout with its
// waves as progress bars, rates, ETA, conditions, failures and events, and
// a DeviceFleet with its version and model histograms. The views are pure
// functions of the objects and a clock, so kubectl-herald prints them and
// the demo narrates with them, and both show the same thing.
package view

// Package rollout holds the rules of a firmware campaign: given a
// FirmwareRollout, the fleet's devices with their reports, the retained
// notices on the broker and the time, Plan decides the rollout's status,
// the notices to publish or withdraw, the events worth telling people
// about, and when to look again. It does no I/O, so every rule is tested
// as a table of cases.
//
// A plan runs as a chain of named steps:
//
//  1. final: a rollout that succeeded keeps its result; an aborted or
//     canceled one keeps its phase but goes on counting device reports.
//  2. selection and targets: which devices the rollout targets, their wave,
//     and where each stands (reports, timeouts on the operator's clock).
//  3. policy: the failure policy over the finished devices.
//  4. ending: cancel, supersede or abort, which withdraw every notice.
//  5. waves: the gates before each wave (pause, policy, approval, soak) and
//     wave completion.
//  6. notices: the notices the started waves call for, diffed against the
//     broker's.
//  7. summary: totals, failure sample, phase, message, conditions, events.
//  8. requeue: when to come back for what no device message announces.
package rollout

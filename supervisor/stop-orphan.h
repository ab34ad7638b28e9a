/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* vmsupd --stop-orphan NAME, the unit's ExecStopPost=: when the unit stops for good while no
 * supervisor runs (it was killed, and a stop was asked before systemd restarted it), the QEMU
 * its launcher keeps would run on with nobody to manage it. This ends it: SIGTERM to QEMU
 * (QEMU exits cleanly, its disks flushed), SIGKILL after STOP_ORPHAN_GRACE_USEC; the launcher
 * then reaps it, removes the run record and exits.
 *
 * For good means: run by hand (no $SERVICE_RESULT), or the supervisor's own clean exit
 * ($SERVICE_RESULT=success: nothing should be left, and whatever is is ended), or a stop job
 * is queued for the unit (asked of systemd over the system bus) within
 * STOP_ORPHAN_JOB_WAIT_USEC of the supervisor's death. Otherwise (a crash, the watchdog, the
 * handover's exit status 3) systemd restarts the supervisor, which adopts QEMU: nothing is
 * touched. A stop asked later, while systemd waits RestartSec, runs no ExecStopPost= and
 * leaves QEMU to the next start (or to systemctl kill --kill-whom=all). */

#include <stdint.h>

#define STOP_ORPHAN_GRACE_USEC (10U * 1000U * 1000U)
#define STOP_ORPHAN_JOB_WAIT_USEC (2U * 1000U * 1000U)

/* Returns 0 (nothing to do, or QEMU ended) or -errno. */
int stop_orphan_run(const char *runtime_dir, const char *name);

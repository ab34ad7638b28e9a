/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "macro.h"

/* The VM's first serial port, read by the supervisor alone and fanned out to:
 *  - the console log: a file of at most log_max bytes; when full it becomes "<log>.1"
 *    (replacing the previous one) and a new file begins, so at most 2 × log_max bytes
 *    are on disk; log_max 0 keeps no log;
 *  - at most one interactive session: a connected stream socket whose other end a
 *    caller holds. What the guest writes is queued for it up to CONSOLE_SESSION_BUFFER
 *    bytes; a session that falls further behind is closed (its caller sees EOF). What
 *    the caller writes goes to the guest, CONSOLE_INPUT_BUFFER bytes at a time: a guest
 *    that does not read only stops the session's input, never the loop.
 * The serial stream is always read, so the guest never blocks on the supervisor.
 * A log that cannot be written (the runtime directory's filesystem full) is closed;
 * the guest's output meanwhile is counted, not kept, and the log is tried again at
 * most every CONSOLE_LOG_RETRY_USEC when more output comes: once it can be written
 * again, a line in it says how many bytes are missing. */
#define CONSOLE_SESSION_BUFFER (256U * 1024U)
#define CONSOLE_INPUT_BUFFER 4096U
#define CONSOLE_LOG_RETRY_USEC (5U * USEC_PER_SEC)

typedef struct Console Console;

/* log_path may be NULL (no log). Returns 0 or -errno. */
int console_new(sd_event *event, const char *name, const char *log_path, uint64_t log_max, Console **ret);
Console *console_free(Console *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(Console *, console_free);

/* Takes fd, the supervisor's end of QEMU's serial stream (closed on failure too), for
 * the run that begins. Returns 0 or -errno. */
int console_attach(Console *c, int fd);
/* The run ended: closes the stream and the session. */
void console_detach(Console *c);
/* True between attach and the stream's end. */
bool console_is_attached(Console *c);

/* Opens the interactive session and returns the caller's end in *ret_fd.
 * -EBUSY when one is open and force is false (force closes it first),
 * -ENOTCONN when no stream is attached. */
int console_open_session(Console *c, bool force, int *ret_fd);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Descriptors that callers hand over never block the loop when they are closed.
 *
 * Closing a descriptor can block: the last close of a TCP socket with unsent data
 * and SO_LINGER waits up to the linger time, whoever closes it. sd-bus owns the
 * descriptors of a received message and closes them on the loop when it frees the
 * message, for every message, whatever the supervisor does with it. Resetting
 * SO_LINGER on our copy does not help: a caller who kept a copy sets it again.
 *
 * So: a bus filter, which runs for every incoming message before anything can hold
 * it, takes a duplicate of each descriptor the message carries. While the
 * duplicate is open, sd-bus's close is never the last one. When the message's
 * descriptor is gone (kcmp() says its slot no longer holds the same file), and
 * at least a grace period after the message arrived (so that the bus daemon, which
 * drops its own copy once it has passed the message on, is not left with the last
 * one and stalled in its turn), the duplicate goes to a closer thread, which closes it off the loop; a close that
 * lingers is interrupted after BUS_FDS_CLOSE_INTERRUPT_USEC by a signal to that
 * thread (the kernel's linger wait ends on a pending signal), so a closer thread is
 * never held for long by one descriptor.
 *
 * Bounds: at most BUS_FDS_WATCH_MAX descriptors are watched at once (held messages
 * are bounded elsewhere; beyond that, a message's descriptors are not protected and
 * a warning is logged). The closers' queue holds open descriptors only, so the
 * process's descriptor limit bounds it; a caller handing over lingering sockets
 * faster than the closers get through them (20 ms each, four threads) fills the
 * supervisor's descriptor table, which fails calls, not the loop.
 *
 * Not covered: descriptors a message carries without naming them in its body (a
 * hand-made message with a UNIX_FDS header and no 'h'), which sd-bus still closes
 * on the loop; and files whose every close calls back into user space (FUSE sends
 * FLUSH on each close, not only the last): a caller who can mount a FUSE file
 * system that never answers can still stall the close of the message's own copy. */

#include <systemd/sd-bus.h>

#include "macro.h"

#define BUS_FDS_WATCH_MAX 4096U
#define BUS_FDS_CLOSERS 4U
#define BUS_FDS_CLOSE_INTERRUPT_USEC (20U * USEC_PER_MSEC)

/* Starts the closer threads and installs the filter on bus (attached to its event
 * loop). Call before the system call filter is applied: the threads are created
 * here, never later. */
int bus_fds_setup(sd_bus *bus);
/* The same filter on another connection (a direct one, bus-direct.h), after bus_fds_setup(). */
int bus_fds_watch_bus(sd_bus *bus, sd_bus_slot **ret_slot);

/* Closes fd on a closer thread (synchronously only if no thread was started). */
void bus_fds_close_async(int fd);

/* Whether m carries descriptors (its signature holds an 'h'). */
bool bus_message_has_fds(sd_bus_message *m);

/* For tests and the confinement checks: descriptors watched and queued now. */
size_t bus_fds_watched(void);

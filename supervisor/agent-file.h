/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* A guest file streamed to or from a caller's descriptor through the guest agent, in
 * bounded chunks: the work behind Agent1.ReadFile and Agent1.WriteFile. The caller is
 * authorized and the agent known to be available before these are called. */

#include <systemd/sd-bus.h>

#include "bus-quota.h"
#include "vm.h"

/* Whether fd is a descriptor a transfer may use: a pipe, a FIFO or an AF_UNIX stream
 * socket, writable for ReadFile (writing = false), readable for WriteFile. Returns 0, or
 * a negative errno with error set (InvalidArgs naming what is wrong). */
int agent_file_check_fd(int fd, bool writing, sd_bus_error *error);

/* ticket (may be NULL) is the caller's share: the transfer releases it when it ends, once
 * these returned 1; the caller keeps it otherwise. */
/* Copies the guest file path (from offset, length bytes, 0 = to EOF) into fd (duplicated;
 * must be writable). WriteFile: fd (readable) into the guest file, appended or replacing it.
 * m is answered with the byte count (t) or an error when the transfer ends.
 * n_transfers counts the transfers under way (Busy beyond a cap); it must outlive them.
 * Returns 1 (reply pending), or a negative errno with error set (InvalidArgs, Busy). */
int agent_file_read(Vm *vm, sd_bus_message *m, const char *path, int fd, uint64_t offset, uint64_t length,
                    unsigned *n_transfers, BusTicket *ticket, sd_bus_error *error);
int agent_file_write(Vm *vm, sd_bus_message *m, const char *path, int fd, bool append, unsigned *n_transfers,
                     BusTicket *ticket, sd_bus_error *error);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <systemd/sd-bus.h>

#include "vm.h"

/* org.vmsup.Agent1.ReadFile (s path, t offset, t length, h fd → t bytes) and
 * WriteFile (s path, h fd, b append → t bytes). */
int vm_method_read_file(sd_bus_message *m, void *userdata, sd_bus_error *error);
int vm_method_write_file(sd_bus_message *m, void *userdata, sd_bus_error *error);
/* AgentNotConnected / NotRunning unless the agent can be asked. */
int vm_agent_available(Vm *vm, sd_bus_error *error);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vmsup.Agent1: the guest agent offered to callers (Command, ReadFile, WriteFile). */

#include "bus-util.h"

#define AGENT_INTERFACE "org.vmsup.Agent1"

extern const BusInterface agent_bus_interface;

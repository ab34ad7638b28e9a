/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vmsup.Monitor1: HumanCommand and Execute, QEMU's monitor behind the permission
 * tables. */

#include "bus-util.h"

#define MONITOR_INTERFACE "org.vmsup.Monitor1"

extern const BusInterface monitor_bus_interface;

/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vmsup.Console1: the serial console (console.h), VNC viewers and screenshots, each
 * a descriptor passed over the bus; VM.Console for all of it. */

#include "bus-util.h"

#define CONSOLE_INTERFACE "org.vmsup.Console1"

/* Screenshots in flight at once, per VM; more is Busy. */
#define CONSOLE_SCREENSHOTS_MAX 4U
/* The largest screenshot passed on (QEMU writes it into a memory file first). */
#define CONSOLE_SCREENSHOT_MAX (64U * 1024U * 1024U)

extern const BusInterface console_bus_interface;

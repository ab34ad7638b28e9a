/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* The D-Bus error names of org.vmsup (docs/interface.md), the only place they are
 * spelled. Which errno becomes which of these, and with what message, is decided in
 * one table: bus-util.c's bus_error_table. */

#define VMSUP_ERROR_NOT_RUNNING         "org.vmsup.Error.NotRunning"
#define VMSUP_ERROR_ALREADY_RUNNING     "org.vmsup.Error.AlreadyRunning"
#define VMSUP_ERROR_QEMU_ERROR          "org.vmsup.Error.QemuError"
#define VMSUP_ERROR_AGENT_ERROR         "org.vmsup.Error.AgentError"
#define VMSUP_ERROR_AGENT_NOT_CONNECTED "org.vmsup.Error.AgentNotConnected"
#define VMSUP_ERROR_AGENT_TIMEOUT       "org.vmsup.Error.AgentTimeout"
#define VMSUP_ERROR_AGENT_PROTOCOL      "org.vmsup.Error.AgentProtocol"
#define VMSUP_ERROR_RESPONSE_TOO_LARGE  "org.vmsup.Error.ResponseTooLarge"
#define VMSUP_ERROR_BUSY                "org.vmsup.Error.Busy"
#define VMSUP_ERROR_MIGRATION_FAILED    "org.vmsup.Error.MigrationFailed"

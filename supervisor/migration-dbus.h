/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* org.vmsup.Migration1: live migration over streams the caller passes (migration.h).
 * VM.Migrate on both ends; GetMigrationStatus with VM.Audit. */

#include "bus-util.h"

#define MIGRATION_INTERFACE "org.vmsup.Migration1"

/* Entries in a migration's options at most; more is InvalidArgs. */
#define MIGRATION_OPTIONS_MAX 16U

extern const BusInterface migration_bus_interface;

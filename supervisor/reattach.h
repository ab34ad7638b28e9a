/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* At start-up, before the launcher is forked: is there a QEMU a previous supervisor of this
 * VM left running? Reads the run record, asks the launcher it names, checks /proc, and
 * decides with adopt_decide(). Blocking (at most the launcher's reply timeout): call it
 * before the loop runs. */

#include "adopt.h"
#include "launch.h"
#include "vm.h"

typedef struct Reattach {
        AdoptVerdict verdict;
        LaunchAdoption launcher;
        RunRecord record;
        bool busy; /* a launcher is there but answers no one: another supervisor serves the VM */
} Reattach;

/* Fills ret; never fails (a refusal or an error is logged and ends as ADOPT_REFUSE or
 * ADOPT_NOTHING). On ADOPT_ATTACH the caller takes the launcher with launcher_use(); in every
 * other case it releases it (launch_adoption_release()) and forks its own. */
void reattach_prepare(const char *runtime_dir, const char *name, Reattach *ret);
/* After the bus is attached: adopt, or report how QEMU ended. */
void reattach_apply(Vm *vm, Reattach *ra);

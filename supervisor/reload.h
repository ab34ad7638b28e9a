/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Reload without a restart (SIGHUP, org.vmsup.VM1.Reload): the definition and the host ACL
 * are read again, as a whole, and either taken or refused as a whole.
 *
 *   at once            the definition's acl, the host ACL, agent_file_paths,
 *                      shutdown_timeout_sec, on_poweroff, on_reboot, on_crash, autostart
 *                      (the next supervisor's start): every call after the reload is
 *                      decided by the new ACLs, whoever made calls before;
 *   at the next Start  qemu, run_as, agent, sandbox (vm_config_qemu_keys): the QEMU
 *                      running now keeps its command line; PendingChanges lists the keys
 *                      it runs without until a new QEMU starts (any start: Start, Reboot's
 *                      fresh QEMU, an automatic restart), and the launcher starts that
 *                      QEMU from the reloaded definition;
 *   refused            what this supervisor set up once: whether QEMU has an agent channel
 *                      (agent with a machine other than none) or a serial console (machine
 *                      none or not), console_log_kib, and QEMU's identity changing from
 *                      root to another user (capabilities dropped at start-up). These need
 *                      a new supervisor (systemctl restart, or SIGUSR2 then a new start).
 *
 * A malformed file, or a refused change, keeps everything as it was: the reason, "FILE:
 * $.json.path: why", is logged and returned. The supervisor runs confined by then: files are
 * read with open/read (no access()), and user and group names resolve through the passwd and
 * group files only (nss "files"; a name only another NSS source knows fails, numeric ids
 * always work), never a module loaded after start-up. */

#include "vm.h"

/* Sets up what a reload needs while the supervisor is still unconfined: the ACL file's path
 * and the name service's sources. */
void vm_reload_setup(Vm *vm, const char *acl_path);
/* Call once confined: names resolve through the files from now on. */
void vm_reload_confined(void);

/* Reloads. Returns 0 (and logs what changed), or -errno with the reason in *ret_error
 * (malloc'd, may be NULL on -ENOMEM) and nothing changed. */
int vm_reload(Vm *vm, char **ret_error);

/* For vm_start: QEMU's pending settings become this start's. */
void vm_reload_apply_pending(Vm *vm);

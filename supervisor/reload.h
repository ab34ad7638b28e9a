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

/* Reloads: the files are read and checked at once; the launcher's answer comes on the loop,
 * and only then is the reload taken. Returns 0 when the launcher is asked, or when a reload
 * is in flight already: then one more runs after it (a Reload call m waits for that one, and
 * any number of SIGHUPs, m NULL, make one). m (a VM1.Reload call; NULL for SIGHUP) is
 * answered when its reload ends; vm->on_reloaded is called at each end. Returns -errno with
 * the reason in *ret_error (malloc'd, may be NULL on -ENOMEM) when refused before asking
 * the launcher (nothing changed; m is the caller's to answer); -ENOBUFS when too many calls
 * wait already. */
int vm_reload(Vm *vm, sd_bus_message *m, char **ret_error);
bool vm_reload_in_flight(const Vm *vm);
/* vm_free(): a reload in flight is forgotten, its callers told the supervisor exits. */
void vm_reload_free(Vm *vm);

/* For vm_start: QEMU's pending settings become this start's. */
void vm_reload_apply_pending(Vm *vm);

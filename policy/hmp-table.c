/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HMP permission table: every human-monitor command vmsup knows, with the
 * tier a caller needs, and for every root-only command the reason.
 *
 * Where it comes from:
 *  - the seed is Proxmox VE's HMPPerms.pm (2025); every seed command keeps at
 *    least its strictness there. gpa2hpa, gpa2hva and i are root-only, as the
 *    seed's comments say (its table says Sys.Modify).
 *  - vmsup is stricter than the seed for closefd, commit, getfd, qemu-io and
 *    quit; the reasons below say why.
 *  - every command that QEMU 7.2's "help" lists is here (checked against the
 *    real binary); singlestep, dump-skeys (s390x) and trace-file (simple trace
 *    back-end) are additions. Seed commands that QEMU 7.2 does not have
 *    (Proxmox's backup commands, newer QEMU's one-insn-per-tb and xen-event-*)
 *    stay, so that a newer or patched binary is covered the same way.
 *  - "info" is tier none: each of its 7.2 subcommands only reads (verified one
 *    by one, including that "info ramblock" shows no host addresses in 7.2).
 *
 * A command that is not here is root-only. Keep the table sorted in strcmp()
 * order: lookups are a binary search, and the unit test checks the order. */

#include "macro.h"
#include "policy.h"

#define NONE(n)    { .name = (n), .tier = HMP_TIER_NONE }
#define SYSMOD(n)  { .name = (n), .tier = HMP_TIER_SYS_MODIFY }
#define ROOT(n, r) { .name = (n), .tier = HMP_TIER_ROOT, .reason = (r) }

const HmpCommand policy_hmp_commands[] = {
        SYSMOD("announce_self"),
        ROOT("backup", "writes a backup to a host path the caller chooses (Proxmox QEMU)"),
        SYSMOD("backup_cancel"),
        SYSMOD("balloon"),
        SYSMOD("block_job_cancel"),
        SYSMOD("block_job_complete"),
        SYSMOD("block_job_pause"),
        SYSMOD("block_job_resume"),
        SYSMOD("block_job_set_speed"),
        SYSMOD("block_resize"),
        SYSMOD("block_set_io_throttle"),
        ROOT("block_stream", "rewrites images from their backing chain, like the other root-only image-chain commands"),
        SYSMOD("boot_set"),
        SYSMOD("calc_dirty_rate"),
        SYSMOD("cancel_vcpu_dirty_limit"),
        ROOT("change", "points a removable medium at a host path the caller chooses"),
        ROOT("chardev-add", "opens host files, sockets and serial devices as character devices"),
        ROOT("chardev-change", "re-points a character device, e.g. a serial port, at a host file or socket"),
        ROOT("chardev-remove", "can remove the supervisor's own channels; the counterpart of chardev-add"),
        SYSMOD("chardev-send-break"),
        ROOT("client_migrate_info", "makes SPICE clients reconnect to a host the caller chooses"),
        ROOT("closefd", "descriptor passing belongs to the supervisor (QMP closefd is reserved)"),
        ROOT("commit", "writes into backing images, which other VMs may share"),
        SYSMOD("cont"),
        SYSMOD("cpu"),
        SYSMOD("delvm"),
        ROOT("device_add", "adds any device, host pass-through included, like -device"),
        ROOT("device_del", "removes devices, the supervisor's agent port included; the counterpart of device_add"),
        ROOT("drive_add", "opens host files as drives, like -drive"),
        ROOT("drive_backup", "copies a disk to a host path the caller chooses"),
        ROOT("drive_del", "detaches host block devices; the counterpart of drive_add"),
        ROOT("drive_mirror", "copies a disk to a host path the caller chooses"),
        ROOT("dump-guest-memory", "writes guest memory to a host path the caller chooses"),
        ROOT("dump-skeys", "writes guest storage keys to a host path the caller chooses (s390x)"),
        ROOT("dumpdtb", "writes the device tree to a host path the caller chooses"),
        SYSMOD("eject"),
        SYSMOD("exit_preconfig"),
        SYSMOD("expire_password"),
        ROOT("gdbserver", "opens a debugger stub on a host socket or device: full control of the guest"),
        ROOT("getfd", "descriptor passing belongs to the supervisor (QMP getfd is reserved)"),
        ROOT("gpa2hpa", "discloses host physical addresses"),
        ROOT("gpa2hva", "discloses QEMU's virtual addresses, which defeats its ASLR"),
        SYSMOD("gva2gpa"),
        NONE("help"),
        ROOT("hostfwd_add", "opens listening ports on the host that forward into the guest"),
        ROOT("hostfwd_remove", "the counterpart of hostfwd_add"),
        ROOT("i", "reads I/O ports of emulated and passed-through devices"),
        NONE("info"),
        SYSMOD("loadvm"),
        SYSMOD("log"),
        ROOT("logfile", "writes QEMU's log to a host path the caller chooses"),
        ROOT("mce", "injects machine-check exceptions; a KVM bug there could reach the host CPU"),
        ROOT("memsave", "writes guest memory to a host path the caller chooses"),
        ROOT("migrate", "sends the VM to any URI, exec: (a host command) included"),
        SYSMOD("migrate_cancel"),
        SYSMOD("migrate_continue"),
        ROOT("migrate_incoming", "reads VM state from any URI, exec: (a host command) included"),
        SYSMOD("migrate_pause"),
        ROOT("migrate_recover", "listens on or connects to any URI"),
        SYSMOD("migrate_set_capability"),
        SYSMOD("migrate_set_parameter"),
        SYSMOD("migrate_start_postcopy"),
        SYSMOD("mouse_button"),
        SYSMOD("mouse_move"),
        SYSMOD("mouse_set"),
        ROOT("nbd_server_add", "exports a disk through the NBD server; the counterpart of nbd_server_start"),
        ROOT("nbd_server_remove", "the counterpart of nbd_server_start"),
        ROOT("nbd_server_start", "opens an NBD server on a host address"),
        ROOT("nbd_server_stop", "the counterpart of nbd_server_start"),
        ROOT("netdev_add", "creates host network back-ends (tap, bridge, sockets)"),
        ROOT("netdev_del", "the counterpart of netdev_add"),
        ROOT("nmi", "injects NMIs; a KVM bug there could reach the host CPU"),
        ROOT("o", "writes I/O ports of emulated and passed-through devices"),
        ROOT("object_add", "creates any QOM object, e.g. memory back-ends on host files"),
        ROOT("object_del", "removes objects the VM depends on; the counterpart of object_add"),
        SYSMOD("one-insn-per-tb"),
        ROOT("pcie_aer_inject_error", "injects PCIe errors, into passed-through devices too"),
        ROOT("pmemsave", "writes guest memory to a host path the caller chooses"),
        SYSMOD("print"),
        ROOT("qemu-io", "a debugging tool: raw image I/O, and its abort and sigraise commands kill QEMU"),
        SYSMOD("qom-get"),
        SYSMOD("qom-list"),
        ROOT("qom-set", "sets any object property, e.g. host paths of back-ends"),
        ROOT("quit", "ends QEMU behind the supervisor's back; Stop and Shutdown are the doors (QMP quit is reserved)"),
        SYSMOD("replay_break"),
        SYSMOD("replay_delete_break"),
        SYSMOD("replay_seek"),
        SYSMOD("ringbuf_read"),
        SYSMOD("ringbuf_write"),
        SYSMOD("savevm"),
        ROOT("savevm-end", "the counterpart of savevm-start (Proxmox QEMU)"),
        ROOT("savevm-start", "writes VM state to a host path the caller chooses (Proxmox QEMU)"),
        ROOT("screendump", "writes an image to a host path the caller chooses"),
        SYSMOD("sendkey"),
        SYSMOD("set_link"),
        SYSMOD("set_password"),
        SYSMOD("set_vcpu_dirty_limit"),
        SYSMOD("singlestep"),
        ROOT("snapshot_blkdev", "creates an overlay image at a host path the caller chooses"),
        SYSMOD("snapshot_blkdev_internal"),
        SYSMOD("snapshot_delete_blkdev_internal"),
        SYSMOD("stop"),
        SYSMOD("stopcapture"),
        SYSMOD("sum"),
        SYSMOD("sync-profile"),
        SYSMOD("system_powerdown"),
        SYSMOD("system_reset"),
        SYSMOD("system_wakeup"),
        SYSMOD("trace-event"),
        ROOT("trace-file", "writes the trace to a host path the caller chooses (simple trace back-end)"),
        ROOT("watchdog_action", "can turn the watchdog into an NMI injector (action inject-nmi)"),
        ROOT("wavcapture", "writes audio to a host path the caller chooses"),
        SYSMOD("x"),
        SYSMOD("x_colo_lost_heartbeat"),
        ROOT("xen-event-inject", "Xen emulation, which vmsup does not use"),
        ROOT("xen-event-list", "Xen emulation, which vmsup does not use"),
        SYSMOD("xp"),
};
const size_t policy_hmp_commands_count = ELEMENTSOF(policy_hmp_commands);

/* QEMU 7.2's help prints these as "cont|c", "help|?", "print|p", "quit|q",
 * "stop|s"; no other command has a second name. */
const HmpAlias policy_hmp_aliases[] = {
        { "?", "help" },
        { "c", "cont" },
        { "p", "print" },
        { "q", "quit" },
        { "s", "stop" },
};
const size_t policy_hmp_aliases_count = ELEMENTSOF(policy_hmp_aliases);

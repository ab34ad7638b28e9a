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
 *  - "info" is tier none, and each of its subcommands has its own tier
 *    (policy_hmp_info_commands below): most only read this VM's state; those
 *    that print host addresses, walk guest page tables without a bound or
 *    describe the host are stricter.
 *  - commands whose effect reaches beyond the VM's own state are root-only
 *    even where the seed says Sys.Modify: host image files (block_resize,
 *    the internal-snapshot commands), QEMU's stderr and so the host log (log,
 *    trace-event), host addresses (sync-profile), device MMIO (x, xp, sum, as
 *    i), secrets (qom-get), the supervisor's own channels (ringbuf_*) and
 *    settings that outlive the caller's request (migrate_set_*).
 *
 * A command that is not here is root-only. Keep the table sorted in strcmp()
 * order: lookups are a binary search, and the unit test checks the order. */

#include "macro.h"
#include "policy.h"

#define NONE(n)    { .name = (n), .tier = HMP_TIER_NONE }
#define SYSMOD(n)  { .name = (n), .tier = HMP_TIER_SYS_MODIFY }
#define ROOT(n, r) { .name = (n), .tier = HMP_TIER_ROOT, .reason = (r) }
/* A Sys.Modify entry whose tier deserves a word. */
#define SYSMOD_WHY(n, r) { .name = (n), .tier = HMP_TIER_SYS_MODIFY, .reason = (r) }

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
        ROOT("block_resize", "resizes the host image file to any size: shrinking destroys the disk, growing fills the host's file system (a size cap would need the image size read before every call)"),
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
        ROOT("delvm", "deletes internal snapshots, root's included; the counterpart of savevm"),
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
        ROOT("loadvm", "reverts the VM to any internal snapshot, root's included; the counterpart of savevm"),
        ROOT("log", "QEMU's log goes to its stderr, which the supervisor logs: floods the host log and writes host addresses and other callers' requests there"),
        ROOT("logfile", "writes QEMU's log to a host path the caller chooses"),
        ROOT("mce", "injects machine-check exceptions; a KVM bug there could reach the host CPU"),
        ROOT("memsave", "writes guest memory to a host path the caller chooses"),
        ROOT("migrate", "sends the VM to any URI, exec: (a host command) included"),
        SYSMOD("migrate_cancel"),
        SYSMOD("migrate_continue"),
        ROOT("migrate_incoming", "reads VM state from any URI, exec: (a host command) included"),
        SYSMOD("migrate_pause"),
        ROOT("migrate_recover", "listens on or connects to any URI"),
        ROOT("migrate_set_capability", "persists into later migrations started by root or VM.Migrate holders; the migration methods set what they need"),
        ROOT("migrate_set_parameter", "persists into later migrations (e.g. clears tls-creds) started by root or VM.Migrate holders; the migration methods set what they need per migration"),
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
        ROOT("qom-get", "reads any object property, the data of secret objects (passphrases) included; partial paths and links reach an object by many names, so no path check can single secrets out"),
        SYSMOD("qom-list"),
        ROOT("qom-set", "sets any object property, e.g. host paths of back-ends"),
        ROOT("quit", "ends QEMU behind the supervisor's back; Stop and Shutdown are the doors (QMP quit is reserved)"),
        SYSMOD("replay_break"),
        SYSMOD("replay_delete_break"),
        SYSMOD("replay_seek"),
        ROOT("ringbuf_read", "drains a ring buffer, the supervisor's own serial ring included"),
        ROOT("ringbuf_write", "writes into a ring buffer, the supervisor's own serial ring included"),
        ROOT("savevm", "writes the VM's RAM into the host image, with no limit on the number of snapshots, and replaces root's (a cap and ownership would need snapshot state the supervisor does not keep)"),
        ROOT("savevm-end", "the counterpart of savevm-start (Proxmox QEMU)"),
        ROOT("savevm-start", "writes VM state to a host path the caller chooses (Proxmox QEMU)"),
        ROOT("screendump", "writes an image to a host path the caller chooses"),
        SYSMOD("sendkey"),
        SYSMOD("set_link"),
        SYSMOD("set_password"),
        SYSMOD("set_vcpu_dirty_limit"),
        SYSMOD("singlestep"),
        ROOT("snapshot_blkdev", "creates an overlay image at a host path the caller chooses"),
        ROOT("snapshot_blkdev_internal", "writes an internal snapshot into the host image, with no limit on their number"),
        ROOT("snapshot_delete_blkdev_internal", "deletes internal snapshots, root's included"),
        SYSMOD("stop"),
        SYSMOD("stopcapture"),
        ROOT("sum", "reads guest-physical ranges of any length, device MMIO (side effects) included, holding QEMU's big lock for minutes"),
        ROOT("sync-profile", "with info sync-profile, prints QEMU's host addresses (mutex and stack pointers), which defeats its ASLR"),
        SYSMOD("system_powerdown"),
        SYSMOD("system_reset"),
        SYSMOD("system_wakeup"),
        ROOT("trace-event", "trace output goes to QEMU's stderr, which the supervisor logs: floods the host log and writes host addresses there"),
        ROOT("trace-file", "writes the trace to a host path the caller chooses (simple trace back-end)"),
        ROOT("watchdog_action", "can turn the watchdog into an NMI injector (action inject-nmi)"),
        ROOT("wavcapture", "writes audio to a host path the caller chooses"),
        ROOT("x", "reads whatever the guest's page tables map, device MMIO (side effects) included, as i reads ports"),
        SYSMOD("x_colo_lost_heartbeat"),
        ROOT("xen-event-inject", "Xen emulation, which vmsup does not use"),
        ROOT("xen-event-list", "Xen emulation, which vmsup does not use"),
        ROOT("xp", "reads guest-physical addresses, device MMIO (side effects) included, as i reads ports"),
};
const size_t policy_hmp_commands_count = ELEMENTSOF(policy_hmp_commands);

/* The subcommands of "info", from QEMU 7.2's "info" listing (the same for
 * -machine none and q35), each run as root against the binary with a guest and
 * its output searched for host addresses and host paths: none prints a host
 * address except those marked root here. "info chardev" and "info block" show
 * back-end paths and image file names, which the VM's definition already names
 * (as query-chardev and query-block do). A subcommand that is not here (a
 * newer QEMU's) is root-only, like an unknown command. Sorted in strcmp()
 * order. */
const HmpCommand policy_hmp_info_commands[] = {
        NONE("balloon"),
        NONE("block"),
        NONE("block-jobs"),
        NONE("blockstats"),
        NONE("capture"),
        NONE("chardev"),
        NONE("cpus"),
        NONE("dirty_rate"),
        NONE("dump"),
        NONE("history"),
        NONE("hotpluggable-cpus"),
        NONE("iothreads"),
        NONE("irq"),
        NONE("jit"),
        NONE("kvm"),
        NONE("lapic"),
        ROOT("mem", "walks the guest's page tables with no bound: a self-referencing table grows QEMU by gigabytes and holds its big lock for hours"),
        NONE("memdev"),
        NONE("memory-devices"),
        NONE("memory_size_summary"),
        NONE("mice"),
        NONE("migrate"),
        NONE("migrate_capabilities"),
        NONE("migrate_parameters"),
        NONE("mtree"),
        NONE("name"),
        NONE("network"),
        NONE("numa"),
        NONE("opcount"),
        NONE("pci"),
        NONE("pic"),
        NONE("profile"),
        NONE("qdm"),
        NONE("qom-tree"),
        NONE("qtree"),
        NONE("ramblock"),
        NONE("rdma"),
        NONE("registers"),
        NONE("replay"),
        NONE("rocker"),
        NONE("rocker-of-dpa-flows"),
        NONE("rocker-of-dpa-groups"),
        NONE("rocker-ports"),
        NONE("roms"),
        NONE("sev"),
        NONE("sgx"),
        NONE("snapshots"),
        NONE("spice"),
        NONE("stats"),
        NONE("status"),
        ROOT("sync-profile", "prints QEMU's host addresses (mutex and stack pointers) once profiling is on, which defeats its ASLR"),
        ROOT("tlb", "walks the guest's page tables with no bound: a self-referencing table grows QEMU by gigabytes and stops it answering"),
        NONE("tpm"),
        NONE("trace-events"),
        NONE("usb"),
        SYSMOD_WHY("usbhost", "lists the host's USB devices, not this VM's"),
        NONE("usernet"),
        NONE("uuid"),
        NONE("vcpu_dirty_limit"),
        NONE("version"),
        NONE("virtio"),
        NONE("virtio-queue-element"),
        NONE("virtio-queue-status"),
        NONE("virtio-status"),
        ROOT("virtio-vhost-queue-status", "prints the host virtual addresses of the vhost rings, as gpa2hva would"),
        NONE("vm-generation-id"),
        NONE("vnc"),
};
const size_t policy_hmp_info_commands_count = ELEMENTSOF(policy_hmp_info_commands);

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

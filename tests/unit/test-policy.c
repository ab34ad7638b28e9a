/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests of policy/: privileges, ACLs, and the HMP, QMP and agent tables.
 *
 * The expectations here are written independently of the tables: as lists per
 * tier or privilege, transcribed from the Proxmox seed, from QEMU 7.2's own
 * "help", query-commands and qemu-ga -b '?' output, and from the contract. A
 * table change that is not also made here fails. */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json-wire.h"
#include "macro.h"
#include "policy.h"

#define MON     PRIV_BIT(PRIV_VM_MONITOR)
#define SYSMOD  PRIV_BIT(PRIV_SYS_MODIFY)
#define MONSYS  (MON | SYSMOD)

static const gid_t test_groups[] = { 100, 1500, 2000 };
static const Caller root_caller = { .uid = 0, .gid = 0 };
static const Caller user_caller = { .uid = 1000, .gid = 1000, .groups = test_groups, .n_groups = 3 };

/* ===================== data transcribed from outside ===================== */

/* Proxmox VE HMPPerms.pm (pve-hmp-perms-patch.txt), as its table says. */
static const struct {
        const char *name;
        HmpTier tier;
} seed[] = {
        { "help", HMP_TIER_NONE },
        { "?", HMP_TIER_NONE },
        { "info", HMP_TIER_NONE },
        { "backup", HMP_TIER_ROOT },
        { "block_stream", HMP_TIER_ROOT },
        { "change", HMP_TIER_ROOT },
        { "chardev-add", HMP_TIER_ROOT },
        { "chardev-change", HMP_TIER_ROOT },
        { "chardev-remove", HMP_TIER_ROOT },
        { "client_migrate_info", HMP_TIER_ROOT },
        { "device_add", HMP_TIER_ROOT },
        { "device_del", HMP_TIER_ROOT },
        { "drive_add", HMP_TIER_ROOT },
        { "drive_backup", HMP_TIER_ROOT },
        { "drive_del", HMP_TIER_ROOT },
        { "drive_mirror", HMP_TIER_ROOT },
        { "dump-guest-memory", HMP_TIER_ROOT },
        { "dumpdtb", HMP_TIER_ROOT },
        { "gdbserver", HMP_TIER_ROOT },
        { "gpa2hpa", HMP_TIER_SYS_MODIFY },
        { "gpa2hva", HMP_TIER_SYS_MODIFY },
        { "hostfwd_add", HMP_TIER_ROOT },
        { "hostfwd_remove", HMP_TIER_ROOT },
        { "i", HMP_TIER_SYS_MODIFY },
        { "logfile", HMP_TIER_ROOT },
        { "mce", HMP_TIER_ROOT },
        { "memsave", HMP_TIER_ROOT },
        { "migrate", HMP_TIER_ROOT },
        { "migrate_incoming", HMP_TIER_ROOT },
        { "migrate_recover", HMP_TIER_ROOT },
        { "nbd_server_add", HMP_TIER_ROOT },
        { "nbd_server_remove", HMP_TIER_ROOT },
        { "nbd_server_start", HMP_TIER_ROOT },
        { "nbd_server_stop", HMP_TIER_ROOT },
        { "netdev_add", HMP_TIER_ROOT },
        { "netdev_del", HMP_TIER_ROOT },
        { "nmi", HMP_TIER_ROOT },
        { "o", HMP_TIER_ROOT },
        { "object_add", HMP_TIER_ROOT },
        { "object_del", HMP_TIER_ROOT },
        { "pcie_aer_inject_error", HMP_TIER_ROOT },
        { "pmemsave", HMP_TIER_ROOT },
        { "qom-set", HMP_TIER_ROOT },
        { "savevm-end", HMP_TIER_ROOT },
        { "savevm-start", HMP_TIER_ROOT },
        { "screendump", HMP_TIER_ROOT },
        { "snapshot_blkdev", HMP_TIER_ROOT },
        { "watchdog_action", HMP_TIER_ROOT },
        { "wavcapture", HMP_TIER_ROOT },
        { "xen-event-inject", HMP_TIER_ROOT },
        { "xen-event-list", HMP_TIER_ROOT },
        { "announce_self", HMP_TIER_SYS_MODIFY },
        { "backup_cancel", HMP_TIER_SYS_MODIFY },
        { "balloon", HMP_TIER_SYS_MODIFY },
        { "block_job_cancel", HMP_TIER_SYS_MODIFY },
        { "block_job_complete", HMP_TIER_SYS_MODIFY },
        { "block_job_pause", HMP_TIER_SYS_MODIFY },
        { "block_job_resume", HMP_TIER_SYS_MODIFY },
        { "block_job_set_speed", HMP_TIER_SYS_MODIFY },
        { "block_resize", HMP_TIER_SYS_MODIFY },
        { "block_set_io_throttle", HMP_TIER_SYS_MODIFY },
        { "boot_set", HMP_TIER_SYS_MODIFY },
        { "calc_dirty_rate", HMP_TIER_SYS_MODIFY },
        { "cancel_vcpu_dirty_limit", HMP_TIER_SYS_MODIFY },
        { "chardev-send-break", HMP_TIER_SYS_MODIFY },
        { "closefd", HMP_TIER_SYS_MODIFY },
        { "commit", HMP_TIER_SYS_MODIFY },
        { "cont", HMP_TIER_SYS_MODIFY },
        { "c", HMP_TIER_SYS_MODIFY },
        { "cpu", HMP_TIER_SYS_MODIFY },
        { "delvm", HMP_TIER_SYS_MODIFY },
        { "eject", HMP_TIER_SYS_MODIFY },
        { "exit_preconfig", HMP_TIER_SYS_MODIFY },
        { "expire_password", HMP_TIER_SYS_MODIFY },
        { "getfd", HMP_TIER_SYS_MODIFY },
        { "gva2gpa", HMP_TIER_SYS_MODIFY },
        { "loadvm", HMP_TIER_SYS_MODIFY },
        { "log", HMP_TIER_SYS_MODIFY },
        { "migrate_cancel", HMP_TIER_SYS_MODIFY },
        { "migrate_continue", HMP_TIER_SYS_MODIFY },
        { "migrate_pause", HMP_TIER_SYS_MODIFY },
        { "migrate_set_capability", HMP_TIER_SYS_MODIFY },
        { "migrate_set_parameter", HMP_TIER_SYS_MODIFY },
        { "migrate_start_postcopy", HMP_TIER_SYS_MODIFY },
        { "mouse_button", HMP_TIER_SYS_MODIFY },
        { "mouse_move", HMP_TIER_SYS_MODIFY },
        { "mouse_set", HMP_TIER_SYS_MODIFY },
        { "one-insn-per-tb", HMP_TIER_SYS_MODIFY },
        { "print", HMP_TIER_SYS_MODIFY },
        { "p", HMP_TIER_SYS_MODIFY },
        { "qemu-io", HMP_TIER_SYS_MODIFY },
        { "qom-get", HMP_TIER_SYS_MODIFY },
        { "qom-list", HMP_TIER_SYS_MODIFY },
        { "quit", HMP_TIER_SYS_MODIFY },
        { "q", HMP_TIER_SYS_MODIFY },
        { "replay_break", HMP_TIER_SYS_MODIFY },
        { "replay_delete_break", HMP_TIER_SYS_MODIFY },
        { "replay_seek", HMP_TIER_SYS_MODIFY },
        { "ringbuf_read", HMP_TIER_SYS_MODIFY },
        { "ringbuf_write", HMP_TIER_SYS_MODIFY },
        { "savevm", HMP_TIER_SYS_MODIFY },
        { "sendkey", HMP_TIER_SYS_MODIFY },
        { "set_link", HMP_TIER_SYS_MODIFY },
        { "set_password", HMP_TIER_SYS_MODIFY },
        { "set_vcpu_dirty_limit", HMP_TIER_SYS_MODIFY },
        { "snapshot_blkdev_internal", HMP_TIER_SYS_MODIFY },
        { "snapshot_delete_blkdev_internal", HMP_TIER_SYS_MODIFY },
        { "stopcapture", HMP_TIER_SYS_MODIFY },
        { "stop", HMP_TIER_SYS_MODIFY },
        { "s", HMP_TIER_SYS_MODIFY },
        { "sum", HMP_TIER_SYS_MODIFY },
        { "sync-profile", HMP_TIER_SYS_MODIFY },
        { "system_powerdown", HMP_TIER_SYS_MODIFY },
        { "system_reset", HMP_TIER_SYS_MODIFY },
        { "system_wakeup", HMP_TIER_SYS_MODIFY },
        { "trace-event", HMP_TIER_SYS_MODIFY },
        { "x", HMP_TIER_SYS_MODIFY },
        { "x_colo_lost_heartbeat", HMP_TIER_SYS_MODIFY },
        { "xp", HMP_TIER_SYS_MODIFY },
};

/* QEMU 7.2.22 "help" (qemu-system-x86_64), first column, "name|alias" as printed. */
static const char *const qemu72_hmp_help[] = {
        "announce_self", "balloon", "block_job_cancel", "block_job_complete", "block_job_pause",
        "block_job_resume", "block_job_set_speed", "block_resize", "block_set_io_throttle",
        "block_stream", "boot_set", "calc_dirty_rate", "cancel_vcpu_dirty_limit", "change",
        "chardev-add", "chardev-change", "chardev-remove", "chardev-send-break",
        "client_migrate_info", "closefd", "commit", "cont|c", "cpu", "delvm", "device_add",
        "device_del", "drive_add", "drive_backup", "drive_del", "drive_mirror", "dump-guest-memory",
        "dumpdtb", "eject", "exit_preconfig", "expire_password", "gdbserver", "getfd", "gpa2hpa",
        "gpa2hva", "gva2gpa", "help|?", "hostfwd_add", "hostfwd_remove", "i", "info", "loadvm",
        "log", "logfile", "mce", "memsave", "migrate", "migrate_cancel", "migrate_continue",
        "migrate_incoming", "migrate_pause", "migrate_recover", "migrate_set_capability",
        "migrate_set_parameter", "migrate_start_postcopy", "mouse_button", "mouse_move",
        "mouse_set", "nbd_server_add", "nbd_server_remove", "nbd_server_start", "nbd_server_stop",
        "netdev_add", "netdev_del", "nmi", "o", "object_add", "object_del", "pcie_aer_inject_error",
        "pmemsave", "print|p", "qemu-io", "qom-get", "qom-list", "qom-set", "quit|q",
        "replay_break", "replay_delete_break", "replay_seek", "ringbuf_read", "ringbuf_write",
        "savevm", "screendump", "sendkey", "set_link", "set_password", "set_vcpu_dirty_limit",
        "singlestep", "snapshot_blkdev", "snapshot_blkdev_internal",
        "snapshot_delete_blkdev_internal", "stopcapture", "stop|s", "sum", "sync-profile",
        "system_powerdown", "system_reset", "system_wakeup", "trace-event", "watchdog_action",
        "wavcapture", "x", "x_colo_lost_heartbeat", "xp",
};

/* The tiers vmsup means to give, written as lists rather than as a table. */
static const char *const expect_hmp_none[] = { "help", "info" };
static const char *const expect_hmp_sysmod[] = {
        "announce_self", "backup_cancel", "balloon", "block_job_cancel", "block_job_complete",
        "block_job_pause", "block_job_resume", "block_job_set_speed", "block_set_io_throttle",
        "boot_set", "calc_dirty_rate", "cancel_vcpu_dirty_limit", "chardev-send-break", "cont",
        "cpu", "eject", "exit_preconfig", "expire_password", "gva2gpa", "migrate_cancel",
        "migrate_continue", "migrate_pause", "migrate_start_postcopy", "mouse_button", "mouse_move",
        "mouse_set", "one-insn-per-tb", "print", "qom-list", "replay_break", "replay_delete_break",
        "replay_seek", "sendkey", "set_link", "set_password", "set_vcpu_dirty_limit", "singlestep",
        "stop", "stopcapture", "system_powerdown", "system_reset", "system_wakeup",
        "x_colo_lost_heartbeat",
};
static const char *const expect_hmp_root[] = {
        "backup", "block_resize", "block_stream", "change", "chardev-add", "chardev-change",
        "chardev-remove", "client_migrate_info", "closefd", "commit", "delvm", "device_add",
        "device_del", "drive_add", "drive_backup", "drive_del", "drive_mirror", "dump-guest-memory",
        "dump-skeys", "dumpdtb", "gdbserver", "getfd", "gpa2hpa", "gpa2hva", "hostfwd_add",
        "hostfwd_remove", "i", "loadvm", "log", "logfile", "mce", "memsave", "migrate",
        "migrate_incoming", "migrate_recover", "migrate_set_capability", "migrate_set_parameter",
        "nbd_server_add", "nbd_server_remove", "nbd_server_start", "nbd_server_stop", "netdev_add",
        "netdev_del", "nmi", "o", "object_add", "object_del", "pcie_aer_inject_error", "pmemsave",
        "qemu-io", "qom-get", "qom-set", "quit", "ringbuf_read", "ringbuf_write", "savevm",
        "savevm-end", "savevm-start", "screendump", "snapshot_blkdev", "snapshot_blkdev_internal",
        "snapshot_delete_blkdev_internal", "sum", "sync-profile", "trace-event", "trace-file",
        "watchdog_action", "wavcapture", "x", "xen-event-inject", "xen-event-list", "xp",
};
/* QEMU 7.2.22 "info" (qemu-system-x86_64 -machine q35), its subcommands. */
static const char *const qemu72_hmp_info[] = {
        "balloon", "block", "block-jobs", "blockstats", "capture", "chardev", "cpus", "dirty_rate",
        "dump", "history", "hotpluggable-cpus", "iothreads", "irq", "jit", "kvm", "lapic", "mem",
        "memdev", "memory-devices", "memory_size_summary", "mice", "migrate",
        "migrate_capabilities", "migrate_parameters", "mtree", "name", "network", "numa", "opcount",
        "pci", "pic", "profile", "qdm", "qom-tree", "qtree", "ramblock", "rdma", "registers",
        "replay", "rocker", "rocker-of-dpa-flows", "rocker-of-dpa-groups", "rocker-ports", "roms",
        "sev", "sgx", "snapshots", "spice", "stats", "status", "sync-profile", "tlb", "tpm",
        "trace-events", "usb", "usbhost", "usernet", "uuid", "vcpu_dirty_limit", "version",
        "virtio", "virtio-queue-element", "virtio-queue-status", "virtio-status",
        "virtio-vhost-queue-status", "vm-generation-id", "vnc",
};
/* The info subcommands that are not tier none: host addresses (sync-profile,
 * virtio-vhost-queue-status), unbounded page-table walks (mem, tlb), the host's
 * devices (usbhost). */
static const char *const expect_hmp_info_root[] = { "mem", "sync-profile", "tlb", "virtio-vhost-queue-status" };
static const char *const expect_hmp_info_sysmod[] = { "usbhost" };
static const struct {
        const char *alias, *command;
} expect_hmp_aliases[] = {
        { "c", "cont" }, { "q", "quit" }, { "s", "stop" }, { "p", "print" }, { "?", "help" },
};

/* QEMU 7.2.22 query-commands (qemu-system-x86_64 -machine none). */
static const char *const qemu72_qmp[] = {
        "add-fd", "add_client", "announce-self", "balloon", "block-commit",
        "block-dirty-bitmap-add", "block-dirty-bitmap-clear", "block-dirty-bitmap-disable",
        "block-dirty-bitmap-enable", "block-dirty-bitmap-merge", "block-dirty-bitmap-remove",
        "block-export-add", "block-export-del", "block-job-cancel", "block-job-complete",
        "block-job-dismiss", "block-job-finalize", "block-job-pause", "block-job-resume",
        "block-job-set-speed", "block-latency-histogram-set", "block-set-write-threshold",
        "block-stream", "block_resize", "block_set_io_throttle", "blockdev-add", "blockdev-backup",
        "blockdev-change-medium", "blockdev-close-tray", "blockdev-create", "blockdev-del",
        "blockdev-insert-medium", "blockdev-mirror", "blockdev-open-tray", "blockdev-remove-medium",
        "blockdev-reopen", "blockdev-snapshot", "blockdev-snapshot-delete-internal-sync",
        "blockdev-snapshot-internal-sync", "blockdev-snapshot-sync", "calc-dirty-rate",
        "cancel-vcpu-dirty-limit", "change-backing-file", "change-vnc-password", "chardev-add",
        "chardev-change", "chardev-remove", "chardev-send-break", "client_migrate_info", "closefd",
        "cont", "device-list-properties", "device_add", "device_del", "display-reload",
        "display-update", "drive-backup", "drive-mirror", "dump-guest-memory", "dumpdtb", "eject",
        "expire_password", "getfd", "human-monitor-command", "inject-nmi", "input-send-event",
        "job-cancel", "job-complete", "job-dismiss", "job-finalize", "job-pause", "job-resume",
        "memsave", "migrate", "migrate-continue", "migrate-incoming", "migrate-pause",
        "migrate-recover", "migrate-set-capabilities", "migrate-set-parameters",
        "migrate-start-postcopy", "migrate_cancel", "nbd-server-add", "nbd-server-remove",
        "nbd-server-start", "nbd-server-stop", "netdev_add", "netdev_del", "object-add",
        "object-del", "pmemsave", "qmp_capabilities", "qom-get", "qom-list", "qom-list-properties",
        "qom-list-types", "qom-set", "query-acpi-ospm-status", "query-balloon", "query-block",
        "query-block-exports", "query-block-jobs", "query-blockstats", "query-chardev",
        "query-chardev-backends", "query-colo-status", "query-command-line-options",
        "query-commands", "query-cpu-definitions", "query-cpu-model-expansion", "query-cpus-fast",
        "query-current-machine", "query-dirty-rate", "query-display-options", "query-dump",
        "query-dump-guest-memory-capability", "query-fdsets", "query-hotpluggable-cpus",
        "query-iothreads", "query-jobs", "query-kvm", "query-machines", "query-memdev",
        "query-memory-devices", "query-memory-size-summary", "query-mice", "query-migrate",
        "query-migrate-capabilities", "query-migrate-parameters", "query-name",
        "query-named-block-nodes", "query-pci", "query-pr-managers", "query-qmp-schema",
        "query-replay", "query-rocker", "query-rocker-of-dpa-flows", "query-rocker-of-dpa-groups",
        "query-rocker-ports", "query-rx-filter", "query-sev", "query-sev-attestation-report",
        "query-sev-capabilities", "query-sev-launch-measure", "query-sgx", "query-sgx-capabilities",
        "query-spice", "query-stats", "query-stats-schemas", "query-status", "query-target",
        "query-tpm", "query-tpm-models", "query-tpm-types", "query-uuid", "query-vcpu-dirty-limit",
        "query-version", "query-vm-generation-id", "query-vnc", "query-vnc-servers",
        "query-xen-replication-status", "query-yank", "quit", "remove-fd", "replay-break",
        "replay-delete-break", "replay-seek", "ringbuf-read", "ringbuf-write",
        "rtc-reset-reinjection", "screendump", "send-key", "set-action", "set-numa-node",
        "set-vcpu-dirty-limit", "set_link", "set_password", "sev-inject-launch-secret",
        "snapshot-delete", "snapshot-load", "snapshot-save", "stop", "system_powerdown",
        "system_reset", "system_wakeup", "trace-event-get-state", "trace-event-set-state",
        "transaction", "watchdog-set-action", "x-blockdev-amend", "x-blockdev-change",
        "x-blockdev-set-iothread", "x-colo-lost-heartbeat", "x-debug-block-dirty-bitmap-sha256",
        "x-debug-query-block-graph", "x-exit-preconfig", "x-query-irq", "x-query-jit",
        "x-query-numa", "x-query-opcount", "x-query-profile", "x-query-ramblock", "x-query-rdma",
        "x-query-roms", "x-query-usb", "x-query-virtio", "x-query-virtio-queue-element",
        "x-query-virtio-queue-status", "x-query-virtio-status", "x-query-virtio-vhost-queue-status",
        "xen-colo-do-checkpoint", "xen-load-devices-state", "xen-save-devices-state",
        "xen-set-global-dirty-log", "xen-set-replication", "yank",
};

static const char *const expect_qmp_reserved[] = {
        "qmp_capabilities", "quit", "getfd", "closefd", "add-fd", "remove-fd",
};
static const char *const expect_qmp_sysmod[] = {
        "announce-self", "balloon", "cont", "eject", "input-send-event", "qom-list",
        "send-key", "set_link", "stop", "system_powerdown", "system_reset", "system_wakeup",
};
static const char *const expect_qmp_monitor[] = {
        "qom-list-types", "query-acpi-ospm-status", "query-balloon", "query-block",
        "query-block-exports", "query-block-jobs", "query-blockstats", "query-chardev",
        "query-chardev-backends", "query-colo-status", "query-command-line-options", "query-commands",
        "query-cpus-fast", "query-current-machine", "query-dirty-rate", "query-display-options",
        "query-dump", "query-dump-guest-memory-capability", "query-hotpluggable-cpus",
        "query-iothreads", "query-jobs", "query-kvm", "query-machines", "query-memdev",
        "query-memory-devices", "query-memory-size-summary", "query-mice", "query-migrate",
        "query-migrate-capabilities", "query-migrate-parameters", "query-name",
        "query-named-block-nodes", "query-pci", "query-pr-managers", "query-qmp-schema",
        "query-replay", "query-rocker", "query-rocker-of-dpa-flows", "query-rocker-of-dpa-groups",
        "query-rocker-ports", "query-rx-filter", "query-sev", "query-sgx", "query-spice",
        "query-stats", "query-stats-schemas", "query-status", "query-target", "query-tpm",
        "query-tpm-models", "query-tpm-types", "query-uuid", "query-vcpu-dirty-limit",
        "query-version", "query-vm-generation-id", "query-vnc", "query-vnc-servers",
        "query-xen-replication-status", "query-yank", "trace-event-get-state", "x-query-irq",
        "x-query-jit", "x-query-numa", "x-query-opcount", "x-query-profile", "x-query-ramblock",
        "x-query-rdma", "x-query-roms", "x-query-usb", "x-query-virtio",
        "x-query-virtio-queue-element", "x-query-virtio-queue-status", "x-query-virtio-status",
};

/* QMP commands with an HMP counterpart: QMP may never be weaker. */
static const struct {
        const char *qmp, *hmp;
} qmp_hmp_pairs[] = {
        { "announce-self", "announce_self" }, { "balloon", "balloon" }, { "cont", "cont" },
        { "stop", "stop" }, { "system_reset", "system_reset" }, { "system_powerdown", "system_powerdown" },
        { "system_wakeup", "system_wakeup" }, { "send-key", "sendkey" }, { "input-send-event", "mouse_move" },
        { "input-send-event", "sendkey" }, { "set_link", "set_link" }, { "eject", "eject" },
        { "qom-get", "qom-get" }, { "qom-list", "qom-list" }, { "qom-set", "qom-set" },
        { "inject-nmi", "nmi" }, { "watchdog-set-action", "watchdog_action" },
        { "set-action", "watchdog_action" }, { "quit", "quit" }, { "getfd", "getfd" },
        { "closefd", "closefd" }, { "device_add", "device_add" }, { "device_del", "device_del" },
        { "object-add", "object_add" }, { "object-del", "object_del" }, { "netdev_add", "netdev_add" },
        { "netdev_del", "netdev_del" }, { "chardev-add", "chardev-add" },
        { "chardev-change", "chardev-change" }, { "chardev-remove", "chardev-remove" },
        { "migrate", "migrate" }, { "migrate-incoming", "migrate_incoming" },
        { "migrate-recover", "migrate_recover" }, { "dump-guest-memory", "dump-guest-memory" },
        { "dumpdtb", "dumpdtb" }, { "screendump", "screendump" }, { "memsave", "memsave" },
        { "pmemsave", "pmemsave" }, { "nbd-server-start", "nbd_server_start" },
        { "nbd-server-add", "nbd_server_add" }, { "drive-mirror", "drive_mirror" },
        { "drive-backup", "drive_backup" }, { "block-stream", "block_stream" },
        { "block-commit", "commit" }, { "blockdev-snapshot-sync", "snapshot_blkdev" },
        { "client_migrate_info", "client_migrate_info" }, { "block_resize", "block_resize" },
        { "block_set_io_throttle", "block_set_io_throttle" }, { "trace-event-set-state", "trace-event" },
        { "ringbuf-write", "ringbuf_write" }, { "set_password", "set_password" },
        { "query-block", "info" }, { "query-status", "info" },
        { "x-query-virtio-vhost-queue-status", "info virtio-vhost-queue-status" },
        { "x-query-virtio-queue-status", "info virtio-queue-status" },
        { "x-query-virtio-queue-element", "info virtio-queue-element" },
        { "x-query-virtio-status", "info virtio-status" }, { "x-query-virtio", "info virtio" },
        { "x-query-ramblock", "info ramblock" }, { "x-query-roms", "info roms" }, { "x-query-jit", "info jit" },
        { "x-query-usb", "info usb" }, { "x-query-irq", "info irq" }, { "x-query-numa", "info numa" },
        { "x-query-opcount", "info opcount" }, { "x-query-profile", "info profile" }, { "x-query-rdma", "info rdma" },
        { "query-block", "info block" }, { "query-chardev", "info chardev" },
};

/* The contract's agent privileges, one list each. Unrestricted: every command
 * of the other agent lists and of PowerMgmt, plus the three below. */
static const char *const expect_qga_audit[] = {
        "guest-ping", "guest-info", "guest-get-time", "guest-get-osinfo", "guest-get-host-name",
        "guest-get-timezone", "guest-get-users", "guest-get-vcpus", "guest-get-fsinfo",
        "guest-get-memory-blocks", "guest-get-memory-block-info", "guest-get-disks",
        "guest-get-devices", "guest-get-cpustats", "guest-get-diskstats", "guest-get-load",
        "guest-network-get-interfaces", "guest-fsfreeze-status",
};
static const char *const expect_qga_fileread[] = {
        "guest-file-open", "guest-file-read", "guest-file-seek", "guest-file-close",
};
static const char *const expect_qga_filewrite[] = {
        "guest-file-open", "guest-file-write", "guest-file-flush", "guest-file-close",
};
static const char *const expect_qga_fsmgmt[] = {
        "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list", "guest-fsfreeze-thaw", "guest-fstrim",
};
static const char *const expect_qga_power[] = {
        "guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
};
static const char *const expect_qga_unrestricted_only[] = {
        "guest-exec", "guest-exec-status", "guest-set-user-password",
};
static const char *const expect_qga_root_only[] = {
        "guest-set-time", "guest-set-vcpus", "guest-set-memory-blocks", "guest-ssh-get-authorized-keys",
        "guest-ssh-add-authorized-keys", "guest-ssh-remove-authorized-keys", "guest-network-get-route",
};
static const char *const expect_qga_reserved[] = { "guest-sync", "guest-sync-delimited" };

/* QEMU 7.2.22 qemu-ga -b '?'. */
static const char *const qemu72_qga[] = {
        "guest-exec", "guest-exec-status", "guest-file-close", "guest-file-flush",
        "guest-file-open", "guest-file-read", "guest-file-seek", "guest-file-write",
        "guest-fsfreeze-freeze", "guest-fsfreeze-freeze-list", "guest-fsfreeze-status",
        "guest-fsfreeze-thaw", "guest-fstrim", "guest-get-cpustats", "guest-get-devices",
        "guest-get-disks", "guest-get-diskstats", "guest-get-fsinfo", "guest-get-host-name",
        "guest-get-memory-block-info", "guest-get-memory-blocks", "guest-get-osinfo",
        "guest-get-time", "guest-get-timezone", "guest-get-users", "guest-get-vcpus", "guest-info",
        "guest-network-get-interfaces", "guest-ping", "guest-set-memory-blocks", "guest-set-time",
        "guest-set-user-password", "guest-set-vcpus", "guest-shutdown",
        "guest-ssh-add-authorized-keys", "guest-ssh-get-authorized-keys",
        "guest-ssh-remove-authorized-keys", "guest-suspend-disk", "guest-suspend-hybrid",
        "guest-suspend-ram", "guest-sync", "guest-sync-delimited",
};
/* Read-only commands of later agents. */
static const char *const later_qga[] = { "guest-get-load", "guest-network-get-route" };

/* qga-qapi-schema.json.txt, every 'command'. */
static const char *const schema_qga[] = {
        "guest-exec", "guest-exec-status", "guest-file-close", "guest-file-flush", "guest-file-open",
        "guest-file-read", "guest-file-seek", "guest-file-write", "guest-fsfreeze-freeze",
        "guest-fsfreeze-freeze-list", "guest-fsfreeze-status", "guest-fsfreeze-thaw", "guest-fstrim",
        "guest-get-fsinfo", "guest-get-host-name", "guest-get-memory-block-info",
        "guest-get-memory-blocks", "guest-get-osinfo", "guest-get-time", "guest-get-timezone",
        "guest-get-users", "guest-get-vcpus", "guest-info", "guest-network-get-interfaces",
        "guest-ping", "guest-set-memory-blocks", "guest-set-time", "guest-set-user-password",
        "guest-set-vcpus", "guest-shutdown", "guest-suspend-disk", "guest-suspend-hybrid",
        "guest-suspend-ram", "guest-sync", "guest-sync-delimited",
};

/* ===================== small helpers ===================== */

static bool in_list(const char *const *l, size_t n, const char *s) {
        for (size_t i = 0; i < n; i++)
                if (streq(l[i], s))
                        return true;
        return false;
}
#define IN_LIST(l, s) in_list((l), ELEMENTSOF(l), (s))

static HmpTier hmp_tier_of(const char *name) {
        return policy_hmp_tier(name, strlen(name));
}

static json_t *parse(const char *s) {
        json_error_t e;
        json_t *j = json_loads(s, JSON_DECODE_ANY | JSON_ALLOW_NUL, &e);

        if (!j)
                fail_msg("test JSON does not parse: %s: %s", s, e.text);
        return j;
}

static int qmp(const char *s, const Caller *c, PrivSet privs, char *msg, size_t msgsz) {
        json_t *j = parse(s);
        int r = policy_check_qmp(j, c, privs, msg, msgsz);

        json_decref(j);
        return r;
}

static int qga(const char *s, const Caller *c, PrivSet privs, char *msg, size_t msgsz) {
        json_t *j = parse(s);
        int r = policy_check_qga(j, c, privs, msg, msgsz);

        json_decref(j);
        return r;
}

/* A one-sentence message of printable ASCII. */
static void assert_sentence(const char *msg) {
        size_t n = strlen(msg);

        assert_true(n > 0);
        for (size_t i = 0; i < n; i++)
                assert_true(msg[i] >= 0x20 && msg[i] < 0x7f);
        assert_int_equal(msg[n - 1], '.');
}

/* ===================== privileges and ACLs ===================== */

static void test_privilege_names(void **state) {
        static const char *const names[] = {
                "VM.Audit", "VM.PowerMgmt", "VM.Console", "VM.Monitor", "Sys.Modify", "VM.Migrate",
                "VM.GuestAgent.Audit", "VM.GuestAgent.FileRead", "VM.GuestAgent.FileWrite",
                "VM.GuestAgent.FileSystemMgmt", "VM.GuestAgent.Unrestricted",
        };

        assert_int_equal(ELEMENTSOF(names), _PRIV_MAX);
        for (size_t i = 0; i < ELEMENTSOF(names); i++) {
                Privilege p = privilege_from_string(names[i]);

                assert_int_not_equal(p, _PRIV_INVALID);
                assert_string_equal(privilege_to_string(p), names[i]);
        }
        for (Privilege p = 0; p < _PRIV_MAX; p++)
                assert_int_equal(privilege_from_string(privilege_to_string(p)), p);

        /* Exact, case-sensitive, no trimming. */
        static const char *const bad[] = {
                "", "vm.audit", "VM.AUDIT", "VM.Audit ", " VM.Audit", "VM.Audit\n", "VM", "VM.GuestAgent",
                "VM.GuestAgent.*", "Sys.Audit", "root", "VM.Audit,VM.Monitor", "Permissions.Modify",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                assert_int_equal(privilege_from_string(bad[i]), _PRIV_INVALID);
        assert_int_equal(privilege_from_string(NULL), _PRIV_INVALID);
        assert_null(privilege_to_string(_PRIV_MAX));
        assert_null(privilege_to_string(_PRIV_INVALID));
        assert_null(privilege_to_string((Privilege) 99));
        assert_int_equal(PRIV_ALL, (1U << 11) - 1U);
}

static void test_acl_user(void **state) {
        const AclEntry acl[] = {
                { ACL_SUBJECT_USER, 1000, PRIV_BIT(PRIV_VM_AUDIT) | PRIV_BIT(PRIV_VM_POWERMGMT) },
                { ACL_SUBJECT_USER, 1001, PRIV_BIT(PRIV_VM_CONSOLE) },
        };
        const Caller alice = { .uid = 1000, .gid = 5000 };
        const Caller bob = { .uid = 1001, .gid = 5000 };
        const Caller carol = { .uid = 1002, .gid = 1000 }; /* gid equal to a user id: no match */

        assert_int_equal(policy_acl_privileges(acl, 2, &alice), PRIV_BIT(PRIV_VM_AUDIT) | PRIV_BIT(PRIV_VM_POWERMGMT));
        assert_int_equal(policy_acl_privileges(acl, 2, &bob), PRIV_BIT(PRIV_VM_CONSOLE));
        assert_int_equal(policy_acl_privileges(acl, 2, &carol), 0);
}

static void test_acl_group(void **state) {
        const gid_t supp[] = { 7, 1500 };
        const AclEntry acl[] = {
                { ACL_SUBJECT_GROUP, 1500, MONSYS },
                { ACL_SUBJECT_GROUP, 42, PRIV_BIT(PRIV_VM_MIGRATE) },
        };
        const Caller primary = { .uid = 2000, .gid = 1500 };
        const Caller supplementary = { .uid = 2001, .gid = 9, .groups = supp, .n_groups = 2 };
        const Caller neither = { .uid = 1500, .gid = 9, .groups = supp, .n_groups = 1 }; /* uid 1500 is no group */
        const Caller both = { .uid = 2002, .gid = 42, .groups = supp, .n_groups = 2 };

        assert_int_equal(policy_acl_privileges(acl, 2, &primary), MONSYS);
        assert_int_equal(policy_acl_privileges(acl, 2, &supplementary), MONSYS);
        assert_int_equal(policy_acl_privileges(acl, 2, &neither), 0);
        assert_int_equal(policy_acl_privileges(acl, 2, &both), MONSYS | PRIV_BIT(PRIV_VM_MIGRATE));
}

static void test_acl_union_and_edges(void **state) {
        const gid_t supp[] = { 300 };
        const AclEntry acl[] = {
                { ACL_SUBJECT_USER, 1000, PRIV_BIT(PRIV_VM_AUDIT) },
                { ACL_SUBJECT_GROUP, 1000, PRIV_BIT(PRIV_VM_CONSOLE) },
                { ACL_SUBJECT_GROUP, 300, PRIV_BIT(PRIV_GA_AUDIT) },
                { ACL_SUBJECT_USER, 1000, PRIV_BIT(PRIV_VM_AUDIT) | PRIV_BIT(PRIV_VM_MONITOR) },
                { ACL_SUBJECT_GROUP, UINT32_MAX, PRIV_ALL },
                { ACL_SUBJECT_USER, UINT32_MAX, PRIV_ALL },
                { (AclSubject) 7, 1000, PRIV_ALL },
                { ACL_SUBJECT_USER, 1000, 0xffff0000U }, /* stray bits are dropped */
        };
        const Caller c = { .uid = 1000, .gid = 1000, .groups = supp, .n_groups = 1 };
        const Caller unknown_gid = { .uid = 4000, .gid = (gid_t) -1 };
        const gid_t unknown_supp[] = { (gid_t) -1 };
        const Caller unknown_all = { .uid = (uid_t) -1, .gid = (gid_t) -1, .groups = unknown_supp, .n_groups = 1 };
        const Caller nobody = { .uid = 65534, .gid = 65534 };

        assert_int_equal(policy_acl_privileges(acl, ELEMENTSOF(acl), &c),
                         PRIV_BIT(PRIV_VM_AUDIT) | PRIV_BIT(PRIV_VM_CONSOLE) | PRIV_BIT(PRIV_GA_AUDIT) |
                                 PRIV_BIT(PRIV_VM_MONITOR));
        assert_int_equal(policy_acl_privileges(acl, ELEMENTSOF(acl), &unknown_gid), 0);
        /* An id nobody can have matches nobody, even a caller reported with it. */
        assert_int_equal(policy_acl_privileges(acl, ELEMENTSOF(acl), &unknown_all), 0);
        assert_int_equal(policy_acl_privileges(acl, ELEMENTSOF(acl), &nobody), 0);
        assert_int_equal(policy_acl_privileges(NULL, 0, &nobody), 0);
        assert_int_equal(policy_acl_privileges(acl, 0, &c), 0);
        assert_int_equal(policy_acl_privileges(acl, ELEMENTSOF(acl), NULL), 0);

        /* Root has everything, with or without entries. */
        assert_int_equal(policy_acl_privileges(NULL, 0, &root_caller), PRIV_ALL);
        assert_int_equal(policy_acl_privileges(acl, ELEMENTSOF(acl), &root_caller), PRIV_ALL);
        /* Group 0 does not make a caller root. */
        const Caller wheel = { .uid = 5, .gid = 0 };
        assert_int_equal(policy_acl_privileges(NULL, 0, &wheel), 0);
}

static void test_check_privilege(void **state) {
        char msg[128];

        for (Privilege p = 0; p < _PRIV_MAX; p++) {
                char want[128];

                assert_int_equal(policy_check_privilege(p, &user_caller, PRIV_BIT(p), msg, sizeof(msg)), 0);
                assert_string_equal(msg, "");
                assert_int_equal(policy_check_privilege(p, &root_caller, 0, msg, sizeof(msg)), 0);
                assert_int_equal(policy_check_privilege(p, &user_caller, PRIV_ALL & ~PRIV_BIT(p), msg, sizeof(msg)),
                                 -EACCES);
                snprintf(want, sizeof(want), "%s privilege required.", privilege_to_string(p));
                assert_string_equal(msg, want);
                assert_int_equal(policy_check_privilege(p, &user_caller, 0, NULL, 0), -EACCES);
        }
        assert_int_equal(policy_check_privilege(PRIV_VM_POWERMGMT, &user_caller, 0, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "VM.PowerMgmt privilege required.");
        assert_int_equal(policy_check_privilege(_PRIV_MAX, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        assert_int_equal(policy_check_privilege(_PRIV_INVALID, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);

        /* A tiny buffer is truncated, still terminated. */
        char tiny[5];
        assert_int_equal(policy_check_privilege(PRIV_VM_AUDIT, &user_caller, 0, tiny, sizeof(tiny)), -EACCES);
        assert_string_equal(tiny, "VM.A");
}

/* ===================== HMP table ===================== */

static void test_hmp_table_shape(void **state) {
        assert_true(policy_hmp_commands_count > 0);
        for (size_t i = 0; i < policy_hmp_commands_count; i++) {
                const HmpCommand *c = &policy_hmp_commands[i];
                size_t n = strlen(c->name);

                if (i > 0)
                        assert_true(strcmp(policy_hmp_commands[i - 1].name, c->name) < 0);
                /* QEMU cuts names at 255 bytes; no real name comes close. */
                assert_true(n > 0 && n < 64);
                for (size_t k = 0; k < n; k++)
                        assert_true(isgraph((unsigned char) c->name[k]) && c->name[k] != '/' && c->name[k] != '|');
                assert_true(c->tier >= 0 && c->tier < _HMP_TIER_MAX);
                if (c->tier == HMP_TIER_ROOT) {
                        assert_non_null(c->reason);
                        assert_true(strlen(c->reason) > 10);
                        assert_null(strchr(c->reason, '\n'));
                        assert_null(strchr(c->reason, '|'));
                } else
                        assert_null(c->reason);
                /* The lookup finds every entry, itself. */
                assert_ptr_equal(policy_hmp_lookup(c->name, n), c);
        }
        for (size_t i = 0; i < policy_hmp_aliases_count; i++) {
                if (i > 0)
                        assert_true(strcmp(policy_hmp_aliases[i - 1].alias, policy_hmp_aliases[i].alias) < 0);
                /* An alias is never also a command name. */
                for (size_t k = 0; k < policy_hmp_commands_count; k++)
                        assert_string_not_equal(policy_hmp_commands[k].name, policy_hmp_aliases[i].alias);
        }
        assert_string_equal(hmp_tier_to_string(HMP_TIER_NONE), "none");
        assert_string_equal(hmp_tier_to_string(HMP_TIER_SYS_MODIFY), "Sys.Modify");
        assert_string_equal(hmp_tier_to_string(HMP_TIER_ROOT), "root");
        assert_null(hmp_tier_to_string(_HMP_TIER_MAX));
        assert_null(hmp_tier_to_string(_HMP_TIER_INVALID));
}

static void test_hmp_table_matches_expectation(void **state) {
        size_t n = ELEMENTSOF(expect_hmp_none) + ELEMENTSOF(expect_hmp_sysmod) + ELEMENTSOF(expect_hmp_root);

        for (size_t i = 0; i < ELEMENTSOF(expect_hmp_none); i++)
                assert_int_equal(hmp_tier_of(expect_hmp_none[i]), HMP_TIER_NONE);
        for (size_t i = 0; i < ELEMENTSOF(expect_hmp_sysmod); i++)
                assert_int_equal(hmp_tier_of(expect_hmp_sysmod[i]), HMP_TIER_SYS_MODIFY);
        for (size_t i = 0; i < ELEMENTSOF(expect_hmp_root); i++) {
                assert_int_equal(hmp_tier_of(expect_hmp_root[i]), HMP_TIER_ROOT);
                /* Known, not merely unknown-and-therefore-root. */
                assert_non_null(policy_hmp_lookup(expect_hmp_root[i], strlen(expect_hmp_root[i])));
        }
        /* And nothing else is in the table. */
        assert_int_equal(policy_hmp_commands_count, n);
        for (size_t i = 0; i < policy_hmp_commands_count; i++) {
                const char *name = policy_hmp_commands[i].name;

                assert_true(IN_LIST(expect_hmp_none, name) || IN_LIST(expect_hmp_sysmod, name) ||
                            IN_LIST(expect_hmp_root, name));
        }
}

static void test_hmp_info_table(void **state) {
        assert_int_equal(policy_hmp_info_commands_count, ELEMENTSOF(qemu72_hmp_info));
        assert_int_equal(ELEMENTSOF(qemu72_hmp_info), 67);
        for (size_t i = 0; i < policy_hmp_info_commands_count; i++) {
                const HmpCommand *c = &policy_hmp_info_commands[i];
                size_t n = strlen(c->name);

                if (i > 0)
                        assert_true(strcmp(policy_hmp_info_commands[i - 1].name, c->name) < 0);
                assert_true(IN_LIST(qemu72_hmp_info, c->name));
                assert_ptr_equal(policy_hmp_info_lookup(c->name, n), c);
                /* Every tier above none says why. */
                if (c->tier == HMP_TIER_NONE)
                        assert_null(c->reason);
                else
                        assert_true(c->reason && strlen(c->reason) > 10 && !strchr(c->reason, '|'));
                if (IN_LIST(expect_hmp_info_root, c->name))
                        assert_int_equal(c->tier, HMP_TIER_ROOT);
                else if (IN_LIST(expect_hmp_info_sysmod, c->name))
                        assert_int_equal(c->tier, HMP_TIER_SYS_MODIFY);
                else
                        assert_int_equal(c->tier, HMP_TIER_NONE);
        }
        assert_null(policy_hmp_info_lookup("status", 3));
        assert_null(policy_hmp_info_lookup(NULL, 0));
        assert_null(policy_hmp_info_lookup("", 0));

        /* The line's tier, and where the subcommand is. */
        const char *sub;
        size_t sub_len;
        assert_int_equal(policy_hmp_line_tier("info", &sub, &sub_len), HMP_TIER_NONE);
        assert_null(sub);
        assert_int_equal(sub_len, 0);
        assert_int_equal(policy_hmp_line_tier(" info \t tlb -x", &sub, &sub_len), HMP_TIER_ROOT);
        assert_int_equal(sub_len, 3);
        assert_memory_equal(sub, "tlb", 3);
        assert_int_equal(policy_hmp_line_tier("info status", NULL, NULL), HMP_TIER_NONE);
        assert_int_equal(policy_hmp_line_tier("info usbhost", NULL, NULL), HMP_TIER_SYS_MODIFY);
        assert_int_equal(policy_hmp_line_tier("info/status", &sub, &sub_len), HMP_TIER_ROOT);
        assert_int_equal(sub_len, 0);
        assert_int_equal(policy_hmp_line_tier("stop", NULL, NULL), HMP_TIER_SYS_MODIFY);
        assert_int_equal(policy_hmp_line_tier("help info tlb", NULL, NULL), HMP_TIER_NONE);
        assert_int_equal(policy_hmp_line_tier("", NULL, NULL), HMP_TIER_ROOT);
        assert_int_equal(policy_hmp_line_tier(NULL, NULL, NULL), HMP_TIER_ROOT);
        /* A subcommand name QEMU cuts at 255 bytes is unknown to both. */
        char longline[400] = "info ";
        memset(longline + 5, 'a', 300);
        longline[305] = '\0';
        assert_int_equal(policy_hmp_line_tier(longline, NULL, NULL), HMP_TIER_ROOT);
}

static void test_hmp_seed_strictness(void **state) {
        assert_int_equal(ELEMENTSOF(seed), 119);
        for (size_t i = 0; i < ELEMENTSOF(seed); i++) {
                HmpTier t = hmp_tier_of(seed[i].name);

                if (t < seed[i].tier)
                        fail_msg("%s is weaker than the seed", seed[i].name);
        }
        /* The seed's comments call these root-only; its table says Sys.Modify. */
        assert_int_equal(hmp_tier_of("gpa2hpa"), HMP_TIER_ROOT);
        assert_int_equal(hmp_tier_of("gpa2hva"), HMP_TIER_ROOT);
        assert_int_equal(hmp_tier_of("i"), HMP_TIER_ROOT);
        /* Every seed name is known (not just refused as unknown). */
        for (size_t i = 0; i < ELEMENTSOF(seed); i++)
                assert_non_null(policy_hmp_lookup(seed[i].name, strlen(seed[i].name)));
}

static void test_hmp_qemu72_covered(void **state) {
        assert_int_equal(ELEMENTSOF(qemu72_hmp_help), 108);
        for (size_t i = 0; i < ELEMENTSOF(qemu72_hmp_help); i++) {
                const char *entry = qemu72_hmp_help[i], *bar = strchr(entry, '|');
                size_t len = bar ? (size_t) (bar - entry) : strlen(entry);
                const HmpCommand *c = policy_hmp_lookup(entry, len);

                if (!c)
                        fail_msg("QEMU 7.2 command %s is missing from the table", entry);
                /* Every alias QEMU prints resolves to that same entry. */
                for (const char *a = bar; a; a = strchr(a + 1, '|')) {
                        const char *end = strchr(a + 1, '|');
                        size_t alen = end ? (size_t) (end - a - 1) : strlen(a + 1);

                        assert_ptr_equal(policy_hmp_lookup(a + 1, alen), c);
                }
        }
        /* And the table's aliases are exactly the ones QEMU prints. */
        size_t printed = 0;
        for (size_t i = 0; i < ELEMENTSOF(qemu72_hmp_help); i++)
                if (strchr(qemu72_hmp_help[i], '|'))
                        printed++;
        assert_int_equal(policy_hmp_aliases_count, printed);
}

static void test_hmp_aliases(void **state) {
        assert_int_equal(policy_hmp_aliases_count, ELEMENTSOF(expect_hmp_aliases));
        for (size_t i = 0; i < ELEMENTSOF(expect_hmp_aliases); i++) {
                const HmpCommand *c = policy_hmp_lookup(expect_hmp_aliases[i].alias, strlen(expect_hmp_aliases[i].alias));

                assert_non_null(c);
                assert_string_equal(c->name, expect_hmp_aliases[i].command);
                assert_int_equal(hmp_tier_of(expect_hmp_aliases[i].alias), hmp_tier_of(expect_hmp_aliases[i].command));
        }
        assert_int_equal(hmp_tier_of("c"), HMP_TIER_SYS_MODIFY);
        assert_int_equal(hmp_tier_of("s"), HMP_TIER_SYS_MODIFY);
        assert_int_equal(hmp_tier_of("p"), HMP_TIER_SYS_MODIFY);
        assert_int_equal(hmp_tier_of("?"), HMP_TIER_NONE);
        assert_int_equal(hmp_tier_of("q"), HMP_TIER_ROOT);
}

static void test_hmp_unknown_is_root(void **state) {
        static const char *const unknown[] = {
                "QUIT", "Quit", "Q", "C", "INFO", "Info", "Help", "cont|c", "quit|q", "help|?", "c|cont",
                "info2", "inf", "infoo", "?? ", "??", "qq", "quitx", "usb_add", "cpu-add", "host_net_add",
                "block_passwd", "acl_show", "commit ", "", "xp2", "x-", "-", "_", "|", "\xc3\xb6",
        };

        for (size_t i = 0; i < ELEMENTSOF(unknown); i++) {
                assert_null(policy_hmp_lookup(unknown[i], strlen(unknown[i])));
                assert_int_equal(hmp_tier_of(unknown[i]), HMP_TIER_ROOT);
        }
        /* Length, not NUL, ends the name: "quit" within a longer buffer. */
        assert_int_equal(policy_hmp_tier("quitting", 4), HMP_TIER_ROOT);
        assert_int_equal(policy_hmp_tier("stopcapture", 4), HMP_TIER_SYS_MODIFY);
        assert_int_equal(policy_hmp_tier("info status", 4), HMP_TIER_NONE);
        assert_int_equal(policy_hmp_tier("information", 4), HMP_TIER_NONE);
        assert_int_equal(policy_hmp_tier("help", 3), HMP_TIER_ROOT); /* "hel" */
        assert_int_equal(policy_hmp_tier(NULL, 0), HMP_TIER_ROOT);
}

/* ===================== HMP command names ===================== */

static void check_name(const char *line, const char *want) {
        const char *name = NULL;
        int r = policy_hmp_command_name(line, &name);

        if (!want) {
                assert_int_equal(r, -EINVAL);
                assert_null(name);
                return;
        }
        assert_int_equal(r, (int) strlen(want));
        assert_memory_equal(name, want, strlen(want));
        /* A pointer into the line, not a copy. */
        assert_true(name >= line && name < line + strlen(line));
}

static void test_hmp_command_name(void **state) {
        check_name("quit", "quit");
        check_name(" q", "q");
        check_name("\tq", "q");
        check_name("\nq", "q");
        check_name("\rquit", "quit");
        check_name("\v\f q", "q");
        check_name("quit\n", "quit");
        check_name("QUIT", "QUIT");
        check_name("info status\nquit", "info");
        check_name("info\nstatus", "info");
        check_name("q\0x", "q");
        check_name("info\x7f", "info\x7f");
        check_name("inf\xc3\xb6", "inf\xc3\xb6");
        check_name("\xa0q", "\xa0q"); /* NBSP is no space to QEMU's C-locale reading */
        check_name("x/10x 0x1000", "x");
        check_name("xp/1", "xp");
        check_name("info/x", "info");
        check_name("info\v", "info");
        check_name("  info   status  ", "info");
        check_name("?", "?");
        check_name("help|?", "help|?");
        check_name("stop;quit", "stop;quit");
        check_name("\x01q", "\x01q"); /* ^A is not white space */
        check_name("\x1bq", "\x1bq");
        check_name("", NULL);
        check_name(" ", NULL);
        check_name(" \t\n\v\f\r", NULL);
        check_name("/", NULL);
        check_name("/quit", NULL);
        check_name("  /quit", NULL);
        check_name("\0quit", NULL);
        assert_int_equal(policy_hmp_command_name(NULL, &(const char *) { NULL }), -EINVAL);
}

/* An independent reading of QEMU's get_command_name(), written with the
 * string functions instead of loops, and with QEMU's 255-byte cut. */
static size_t ref_command_name(const char *line, const char **ret) {
        static const char ws[] = " \t\n\v\f\r";
        const char *s = line + strspn(line, ws);

        *ret = s;
        return strcspn(s, " \t\n\v\f\r/");
}

/* QEMU's hmp_compare_cmd(): name against each '|'-separated part of list. */
static bool ref_compare_cmd(const char *name, size_t len, const char *list) {
        for (const char *p = list;;) {
                const char *end = strchrnul(p, '|');

                if ((size_t) (end - p) == len && memcmp(p, name, len) == 0)
                        return true;
                if (*end == '\0')
                        return false;
                p = end + 1;
        }
}

/* The tier the expectation lists give to what QEMU would run for name. */
static HmpTier ref_tier(const char *name, size_t len) {
        const char *primary = NULL;
        char buf[256];

        if (len > 255) /* QEMU's cmdname[256] */
                len = 255;
        for (size_t i = 0; i < ELEMENTSOF(qemu72_hmp_help) && !primary; i++)
                if (ref_compare_cmd(name, len, qemu72_hmp_help[i])) {
                        size_t n = strcspn(qemu72_hmp_help[i], "|");
                        memcpy(buf, qemu72_hmp_help[i], n);
                        buf[n] = '\0';
                        primary = buf;
                }
        if (!primary) {
                memcpy(buf, name, len);
                buf[len] = '\0';
                primary = buf;
        }
        if (IN_LIST(expect_hmp_none, primary))
                return HMP_TIER_NONE;
        if (IN_LIST(expect_hmp_sysmod, primary))
                return HMP_TIER_SYS_MODIFY;
        return HMP_TIER_ROOT;
}

/* The tier of a whole line as QEMU dispatches it: "info" followed by anything
 * but white space dispatches to the subcommand QEMU reads from there. */
static HmpTier ref_line_tier(const char *line) {
        const char *name, *p, *sub;
        size_t len, sublen;
        char buf[256];

        len = ref_command_name(line, &name);
        if (len == 0)
                return HMP_TIER_ROOT;
        if (!(len == 4 && memcmp(name, "info", 4) == 0))
                return ref_tier(name, len);
        p = name + len;
        p += strspn(p, " \t\n\v\f\r");
        if (*p == '\0')
                return HMP_TIER_NONE;
        sublen = ref_command_name(p, &sub);
        if (sublen == 0 || sublen > 255)
                return HMP_TIER_ROOT;
        memcpy(buf, sub, sublen);
        buf[sublen] = '\0';
        if (!IN_LIST(qemu72_hmp_info, buf) || IN_LIST(expect_hmp_info_root, buf))
                return HMP_TIER_ROOT;
        if (IN_LIST(expect_hmp_info_sysmod, buf))
                return HMP_TIER_SYS_MODIFY;
        return HMP_TIER_NONE;
}

/* An x or xp dump of more units than the limit: the digits right after the
 * '/' that follows the name and white space, leading zeros aside. */
static bool ref_dump_too_large(const char *name, size_t len) {
        const char *p = name + len;
        char digits[16];
        size_t n;

        if (!((len == 1 && memcmp(name, "x", 1) == 0) || (len == 2 && memcmp(name, "xp", 2) == 0)))
                return false;
        p += strspn(p, " \t\n\v\f\r");
        if (*p != '/')
                return false;
        p++;
        p += strspn(p, "0");
        n = strspn(p, "0123456789");
        if (n >= sizeof(digits))
                return true;
        memcpy(digits, p, n);
        digits[n] = '\0';
        return n > 0 && strtoull(digits, NULL, 10) > POLICY_HMP_DUMP_MAX;
}

/* The whole decision, modelled from the contract. */
/* RFC 3629 UTF-8 (no overlong forms, no surrogates, at most U+10FFFF) without
 * noncharacters: what QEMU reads back from a JSON string. */
static bool ref_wire_text_ok(const unsigned char *p) {
        while (*p) {
                uint32_t cp, min;
                unsigned n;

                if (*p < 0x80) {
                        p++;
                        continue;
                }
                if ((*p & 0xE0) == 0xC0)
                        n = 1, cp = *p & 0x1F, min = 0x80;
                else if ((*p & 0xF0) == 0xE0)
                        n = 2, cp = *p & 0x0F, min = 0x800;
                else if ((*p & 0xF8) == 0xF0)
                        n = 3, cp = *p & 0x07, min = 0x10000;
                else
                        return false;
                for (unsigned i = 1; i <= n; i++) {
                        if ((p[i] & 0xC0) != 0x80)
                                return false;
                        cp = cp << 6 | (p[i] & 0x3F);
                }
                if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
                        return false;
                if ((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFE) == 0xFFFE)
                        return false;
                p += n + 1;
        }
        return true;
}

static int ref_check_hmp(const char *line, bool root, PrivSet privs) {
        const char *name;
        size_t len;

        if (strlen(line) > POLICY_HMP_LINE_MAX)
                return -EINVAL;
        if (!ref_wire_text_ok((const unsigned char *) line))
                return -EINVAL;
        if (!root)
                for (const unsigned char *p = (const unsigned char *) line; *p; p++)
                        if (!(*p == '\t' || (*p >= 0x20 && *p <= 0x7e)))
                                return -EINVAL;
        len = ref_command_name(line, &name);
        if (len == 0 || ref_dump_too_large(name, len))
                return -EINVAL;
        if (root)
                return 0;
        if (!(privs & MON))
                return -EACCES;
        switch (ref_line_tier(line)) {
        case HMP_TIER_NONE:
                return 0;
        case HMP_TIER_SYS_MODIFY:
                return privs & SYSMOD ? 0 : -EACCES;
        default:
                return -EACCES;
        }
}

/* xorshift64*: reproducible, no global state. */
static uint64_t rnd(uint64_t *s) {
        *s ^= *s >> 12;
        *s ^= *s << 25;
        *s ^= *s >> 27;
        return *s * UINT64_C(2685821657736338717);
}

/* A hostile line: white space of every kind, '/', '|', pieces of command
 * names and aliases, upper case, control bytes, DEL, UTF-8 and stray high
 * bytes, and NULs that end the C string early. */
static size_t hostile_line(uint64_t *s, char *buf, size_t size) {
        static const char *const pieces[] = {
                " ", "\t", "\n", "\r", "\v", "\f", "/", "|", ";", "q", "quit", "QUIT", "Q", "c", "cont", "s",
                "stop", "p", "print", "?", "help", "info", "i", "o", "x", "xp", "sum", "gdbserver",
                "migrate", "nmi", "status", "exec:sh", "I", "nfo", "ui", "t", "\x7f", "\x01", "\x1b",
                "tlb", "mem", "usbhost", "sync-profile", "virtio-vhost-queue-status", "info tlb", "info ",
                "\xc3\xb6", "\xa0", "\x85", "\xff", "\xc0\x80", "0x1000", "/10x", "-", "_",
                "/16384", "/16385", "0", "9",
        };
        size_t n = 0, count = rnd(s) % 8;

        for (size_t i = 0; i < count; i++) {
                const char *p;
                size_t len;

                if (rnd(s) % 16 == 0) {
                        /* Occasionally an embedded NUL. */
                        p = "\0";
                        len = 1;
                } else {
                        p = pieces[rnd(s) % ELEMENTSOF(pieces)];
                        len = strlen(p);
                }
                if (n + len + 1 > size)
                        break;
                memcpy(buf + n, p, len);
                n += len;
        }
        buf[n] = '\0';
        return n;
}

static void test_hmp_name_fuzz(void **state) {
        uint64_t seed_state = UINT64_C(0x9e3779b97f4a7c15);
        char buf[256];

        for (unsigned i = 0; i < 200000; i++) {
                const char *name = NULL, *ref;
                size_t ref_len;
                int r;

                hostile_line(&seed_state, buf, sizeof(buf));
                r = policy_hmp_command_name(buf, &name);
                ref_len = ref_command_name(buf, &ref);

                if (ref_len == 0)
                        assert_int_equal(r, -EINVAL);
                else {
                        assert_int_equal(r, (int) ref_len);
                        assert_ptr_equal(name, ref);
                }

                /* QEMU's own loop, with isspace() in the C locale. */
                const char *p = buf, *start;
                while (isspace((unsigned char) *p))
                        p++;
                start = p;
                while (*p != '\0' && *p != '/' && !isspace((unsigned char) *p))
                        p++;
                assert_int_equal(p - start, ref_len);
                assert_ptr_equal(start, ref);
        }
}

static void test_hmp_decision_fuzz(void **state) {
        static const PrivSet privsets[] = { 0, MON, SYSMOD, MONSYS, PRIV_ALL };
        uint64_t seed_state = UINT64_C(0x2545f4914f6cdd1d);
        char buf[256], msg[256];

        for (unsigned i = 0; i < 100000; i++) {
                hostile_line(&seed_state, buf, sizeof(buf));

                for (size_t k = 0; k < ELEMENTSOF(privsets); k++) {
                        int r = policy_check_hmp(buf, &user_caller, privsets[k], msg, sizeof(msg));

                        assert_int_equal(r, ref_check_hmp(buf, false, privsets[k]));
                        if (r < 0)
                                assert_sentence(msg);
                }
                assert_int_equal(policy_check_hmp(buf, &root_caller, 0, msg, sizeof(msg)), ref_check_hmp(buf, true, 0));
        }
}

/* The tier a caller holds, for "never above the caller's". */
static HmpTier caller_tier(PrivSet privs) {
        return privs & SYSMOD ? HMP_TIER_SYS_MODIFY : HMP_TIER_NONE;
}

typedef struct HmpCase {
        const char *line;
        int mon;     /* result for VM.Monitor alone */
        int monsys;  /* result for VM.Monitor + Sys.Modify */
        int root;    /* result for root */
} HmpCase;

static void test_hmp_bypass_strings(void **state) {
        static const HmpCase cases[] = {
                { "q", -EACCES, -EACCES, 0 },
                { " q", -EACCES, -EACCES, 0 },
                { "\tq", -EACCES, -EACCES, 0 },
                { "\nq", -EINVAL, -EINVAL, 0 },
                { "quit\n", -EINVAL, -EINVAL, 0 },
                { "QUIT", -EACCES, -EACCES, 0 },
                { "info status\nquit", -EINVAL, -EINVAL, 0 },
                { "q\0", -EACCES, -EACCES, 0 }, /* a C string stops at the NUL: "q" */
                { "info\x7f", -EINVAL, -EINVAL, 0 },
                { "inf\xc3\xb6", -EINVAL, -EINVAL, 0 },
                { "x/10x 0x1000", -EACCES, -EACCES, 0 },
                { "c", -EACCES, 0, 0 },
                { "s", -EACCES, 0, 0 },
                { "p 1", -EACCES, 0, 0 },
                { "?", 0, 0, 0 },
                { "help", 0, 0, 0 },
                { "help quit", 0, 0, 0 },
                { "info/x", -EACCES, -EACCES, 0 }, /* QEMU: unknown command '' */
                { "info\v", -EINVAL, -EINVAL, 0 },
                { "\rquit", -EINVAL, -EINVAL, 0 },
                { "  info   status  ", 0, 0, 0 },
                { "\tinfo\tstatus\t", 0, 0, 0 },
                { "info quit", -EACCES, -EACCES, 0 }, /* no such subcommand */
                { "info status;quit", -EACCES, -EACCES, 0 }, /* QEMU: unknown 'status;quit' */
                { "info status quit", 0, 0, 0 }, /* QEMU: "extraneous characters" */
                { "info", 0, 0, 0 },
                { "info   ", 0, 0, 0 },
                { "info tlb", -EACCES, -EACCES, 0 },
                { "info\ttlb", -EACCES, -EACCES, 0 },
                { "  info   tlb  ", -EACCES, -EACCES, 0 },
                { "info tlb/x", -EACCES, -EACCES, 0 },
                { "info mem", -EACCES, -EACCES, 0 },
                { "info sync-profile -n", -EACCES, -EACCES, 0 },
                { "info virtio-vhost-queue-status /x 0", -EACCES, -EACCES, 0 },
                { "info usbhost", -EACCES, 0, 0 },
                { "info TLB", -EACCES, -EACCES, 0 },
                { "info tl", -EACCES, -EACCES, 0 },
                { "info tlbx", -EACCES, -EACCES, 0 },
                { "info virtio-queue-status /x 0", 0, 0, 0 },
                { "info ramblock", 0, 0, 0 },
                { "info\ntlb", -EINVAL, -EINVAL, 0 },
                { "help info tlb", 0, 0, 0 },
                { "sync-profile on", -EACCES, -EACCES, 0 },
                { "qom-get /objects/sec0 data", -EACCES, -EACCES, 0 },
                { "block_resize drive0 0", -EACCES, -EACCES, 0 },
                { "savevm t1", -EACCES, -EACCES, 0 },
                { "loadvm t1", -EACCES, -EACCES, 0 },
                { "delvm t1", -EACCES, -EACCES, 0 },
                { "snapshot_blkdev_internal drive0 t1", -EACCES, -EACCES, 0 },
                { "snapshot_delete_blkdev_internal drive0 t1", -EACCES, -EACCES, 0 },
                { "trace-event * on", -EACCES, -EACCES, 0 },
                { "log all", -EACCES, -EACCES, 0 },
                { "sum 0 4294967295", -EACCES, -EACCES, 0 },
                { "ringbuf_read vmsup-serial0 1000", -EACCES, -EACCES, 0 },
                { "ringbuf_write vmsup-serial0 x", -EACCES, -EACCES, 0 },
                { "migrate_set_capability xbzrle on", -EACCES, -EACCES, 0 },
                { "migrate_set_parameter tls-creds \"\"", -EACCES, -EACCES, 0 },
                { "stop;quit", -EACCES, -EACCES, 0 }, /* one unknown name to QEMU */
                { "cont|c", -EACCES, -EACCES, 0 },
                { "help|?", -EACCES, -EACCES, 0 },
                { "i /b 0x60", -EACCES, -EACCES, 0 },
                { "o /b 0x60 0", -EACCES, -EACCES, 0 },
                { "gpa2hva 0", -EACCES, -EACCES, 0 },
                { "migrate exec:sh", -EACCES, -EACCES, 0 },
                { "migrate_cancel", -EACCES, 0, 0 },
                { "qemu-io virtio0 \"abort\"", -EACCES, -EACCES, 0 },
                { "getfd x", -EACCES, -EACCES, 0 },
                { "commit all", -EACCES, -EACCES, 0 },
                { "stop", -EACCES, 0, 0 },
                { "nmi", -EACCES, -EACCES, 0 },
                { "xp/1", -EACCES, -EACCES, 0 },
                /* Dumps: at most POLICY_HMP_DUMP_MAX units, for everyone. */
                { "xp /16384xb 0", -EACCES, -EACCES, 0 },
                { "x/16384i 0", -EACCES, -EACCES, 0 },
                { "xp/00000000000000016384xg 0", -EACCES, -EACCES, 0 },
                { "xp /16385xb 0", -EINVAL, -EINVAL, -EINVAL },
                { "xp/700000xg 0", -EINVAL, -EINVAL, -EINVAL },
                { "x\t/99999999999999999999999 0", -EINVAL, -EINVAL, -EINVAL },
                { "xp 16385 0", -EACCES, -EACCES, 0 }, /* no '/': QEMU dumps one unit */
                { "xp /g16385 0", -EACCES, -EACCES, 0 }, /* QEMU: "invalid char in format" */
                { "print /100000x 0", -EACCES, 0, 0 }, /* one value, whatever the count */
                { "info /100000", -EACCES, -EACCES, 0 }, /* the empty subcommand */
                { "x\x01", -EINVAL, -EINVAL, 0 },
                { "\x1b[Aquit", -EINVAL, -EINVAL, 0 },
                { "/quit", -EINVAL, -EINVAL, -EINVAL },
                { "/", -EINVAL, -EINVAL, -EINVAL },
                { "", -EINVAL, -EINVAL, -EINVAL },
                { " ", -EINVAL, -EINVAL, -EINVAL },
                { "          ", -EINVAL, -EINVAL, -EINVAL },
                { "\t \t", -EINVAL, -EINVAL, -EINVAL },
                { "\n", -EINVAL, -EINVAL, -EINVAL },
                { "\r\n", -EINVAL, -EINVAL, -EINVAL },
                /* What QEMU refuses in a JSON string, for root too. */
                { "info \xef\xbf\xbf", -EINVAL, -EINVAL, -EINVAL },        /* U+FFFF */
                { "\x03\xef\xbf\xbf", -EINVAL, -EINVAL, -EINVAL },
                { "info \xef\xb7\x90", -EINVAL, -EINVAL, -EINVAL },        /* U+FDD0 */
                { "info \xf4\x8f\xbf\xbe", -EINVAL, -EINVAL, -EINVAL },   /* U+10FFFE */
                { "info \xed\xa0\x80", -EINVAL, -EINVAL, -EINVAL },        /* a surrogate */
                { "info \xc0\xaf", -EINVAL, -EINVAL, -EINVAL },             /* overlong '/' */
                { "info \xff", -EINVAL, -EINVAL, -EINVAL },
                { "info \xc3\xa9", -EINVAL, -EINVAL, 0 },                    /* é: non-ASCII, root's to send */
        };
        char msg[256];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                const HmpCase *c = &cases[i];

                assert_int_equal(policy_check_hmp(c->line, &user_caller, MON, msg, sizeof(msg)), c->mon);
                assert_int_equal(policy_check_hmp(c->line, &user_caller, MONSYS, msg, sizeof(msg)), c->monsys);
                assert_int_equal(policy_check_hmp(c->line, &root_caller, 0, msg, sizeof(msg)), c->root);
                assert_int_equal(policy_check_hmp(c->line, &root_caller, PRIV_ALL, msg, sizeof(msg)), c->root);

                /* Whatever is allowed runs, in QEMU, a command of at most the
                 * caller's tier. */
                static const PrivSet ps[] = { MON, MONSYS };
                for (size_t k = 0; k < ELEMENTSOF(ps); k++) {
                        if (policy_check_hmp(c->line, &user_caller, ps[k], NULL, 0) != 0)
                                continue;
                        assert_true(ref_line_tier(c->line) <= caller_tier(ps[k]));
                }
        }
}

static void test_hmp_long_lines(void **state) {
        char msg[256];
        char *line = malloc(POLICY_HMP_LINE_MAX + 2);

        assert_non_null(line);

        /* Exactly at the limit: fine. */
        memset(line, ' ', POLICY_HMP_LINE_MAX);
        memcpy(line, "info", 4);
        line[POLICY_HMP_LINE_MAX] = '\0';
        assert_int_equal(policy_check_hmp(line, &user_caller, MON, msg, sizeof(msg)), 0);
        /* One byte more: refused for everyone, root too. */
        line[POLICY_HMP_LINE_MAX] = ' ';
        line[POLICY_HMP_LINE_MAX + 1] = '\0';
        assert_int_equal(policy_check_hmp(line, &user_caller, MON, msg, sizeof(msg)), -EINVAL);
        assert_sentence(msg);
        assert_int_equal(policy_check_hmp(line, &root_caller, 0, msg, sizeof(msg)), -EINVAL);

        /* A name longer than QEMU's 255-byte buffer is unknown both ways. */
        memset(line, 'q', 1000);
        line[1000] = '\0';
        assert_int_equal(policy_check_hmp(line, &user_caller, MONSYS, msg, sizeof(msg)), -EACCES);
        assert_non_null(strstr(msg, "root-only"));
        /* The message shows at most 32 characters of it. */
        assert_non_null(strstr(msg, "'qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq...'"));
        assert_true(strlen(msg) < 80);

        /* "quit" followed by 300 letters is not quit. */
        memset(line, 'x', 400);
        memcpy(line, "quit", 4);
        line[304] = '\0';
        assert_int_equal(policy_hmp_tier(line, 304), HMP_TIER_ROOT);
        assert_null(policy_hmp_lookup(line, 304));

        free(line);
}

static void test_hmp_order_and_messages(void **state) {
        char msg[256];
        char small[12];

        /* Validation before authorization: a caller with no privilege at all
         * gets InvalidArgs for a malformed line. */
        assert_int_equal(policy_check_hmp("\nquit", &user_caller, 0, msg, sizeof(msg)), -EINVAL);
        assert_string_equal(msg, "Control characters and non-ASCII are not accepted in a command line.");
        assert_int_equal(policy_check_hmp("", &user_caller, 0, msg, sizeof(msg)), -EINVAL);
        assert_sentence(msg);
        assert_int_equal(policy_check_hmp("   ", &root_caller, 0, msg, sizeof(msg)), -EINVAL);
        assert_sentence(msg);

        /* Then VM.Monitor, whatever the command. */
        assert_int_equal(policy_check_hmp("info status", &user_caller, 0, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "VM.Monitor privilege required.");
        assert_int_equal(policy_check_hmp("quit", &user_caller, SYSMOD, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "VM.Monitor privilege required.");
        assert_int_equal(policy_check_hmp("help", &user_caller, PRIV_ALL & ~MON, msg, sizeof(msg)), -EACCES);

        /* Then the tier. */
        assert_int_equal(policy_check_hmp("stop", &user_caller, MON, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'stop' requires the Sys.Modify privilege.");
        assert_int_equal(policy_check_hmp("  c ", &user_caller, MON, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'c' requires the Sys.Modify privilege.");
        assert_int_equal(policy_check_hmp("quit", &user_caller, PRIV_ALL, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'quit' is root-only.");
        assert_int_equal(policy_check_hmp("frobnicate now", &user_caller, MONSYS, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'frobnicate' is root-only.");
        assert_int_equal(policy_check_hmp("print 1", &user_caller, MONSYS, msg, sizeof(msg)), 0);
        assert_string_equal(msg, "");
        /* An info subcommand is named with its command. */
        assert_int_equal(policy_check_hmp("info  tlb", &user_caller, MONSYS, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'info tlb' is root-only.");
        assert_int_equal(policy_check_hmp("info usbhost", &user_caller, MON, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'info usbhost' requires the Sys.Modify privilege.");
        assert_int_equal(policy_check_hmp("info nosuchthing", &user_caller, MONSYS, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'info nosuchthing' is root-only.");
        assert_int_equal(policy_check_hmp("info /x", &user_caller, MONSYS, msg, sizeof(msg)), -EACCES);
        assert_sentence(msg);

        /* Root: anything with a name, control characters too, but only what QEMU can
         * read back from a JSON string (no D-Bus string holds invalid UTF-8 anyway). */
        assert_int_equal(policy_check_hmp("\nquit\x01", &root_caller, 0, msg, sizeof(msg)), 0);
        assert_int_equal(policy_check_hmp("\nquit\x01\xff", &root_caller, 0, msg, sizeof(msg)), -EINVAL);
        assert_sentence(msg);
        assert_int_equal(policy_check_hmp("migrate exec:true", &root_caller, 0, NULL, 0), 0);

        /* Messages are optional and always terminated. */
        assert_int_equal(policy_check_hmp("quit", &user_caller, MON, NULL, 0), -EACCES);
        assert_int_equal(policy_check_hmp("quit", &user_caller, MON, small, sizeof(small)), -EACCES);
        assert_int_equal(strlen(small), sizeof(small) - 1);
        assert_int_equal(policy_check_hmp("quit", &user_caller, MON, small, 1), -EACCES);
        assert_int_equal(policy_check_hmp(NULL, &user_caller, MON, msg, sizeof(msg)), -EINVAL);
        assert_int_equal(policy_check_hmp("info", NULL, MON, msg, sizeof(msg)), -EINVAL);

        /* A name with a quote or odd characters is still shown sanitized; raw
         * bytes from root's lines are never echoed (root is never refused on a
         * name, so this only concerns printable ASCII). */
        assert_int_equal(policy_check_hmp("a'b\"c", &user_caller, MONSYS, msg, sizeof(msg)), -EACCES);
        assert_sentence(msg);
}

/* Every table entry, every caller, through the full check. */
static void test_hmp_matrix(void **state) {
        static const PrivSet privsets[] = { 0, MON, SYSMOD, MONSYS, PRIV_ALL & ~MON, PRIV_ALL & ~SYSMOD };
        char line[128], msg[256];

        size_t n_cmds = policy_hmp_commands_count + policy_hmp_aliases_count;

        for (size_t i = 0; i < n_cmds + policy_hmp_info_commands_count; i++) {
                const char *name = i < policy_hmp_commands_count ? policy_hmp_commands[i].name
                                   : i < n_cmds ? policy_hmp_aliases[i - policy_hmp_commands_count].alias
                                                : policy_hmp_info_commands[i - n_cmds].name;
                HmpTier t;

                if (i < n_cmds)
                        snprintf(line, sizeof(line), " %s arg", name);
                else
                        snprintf(line, sizeof(line), " info %s arg", name);
                t = ref_line_tier(line);
                for (size_t k = 0; k < ELEMENTSOF(privsets); k++) {
                        PrivSet p = privsets[k];
                        int want = !(p & MON) ? -EACCES
                                 : t == HMP_TIER_NONE ? 0
                                 : t == HMP_TIER_SYS_MODIFY && (p & SYSMOD) ? 0 : -EACCES;

                        assert_int_equal(policy_check_hmp(line, &user_caller, p, msg, sizeof(msg)), want);
                        if (want < 0) {
                                assert_sentence(msg);
                                if (!(p & MON))
                                        assert_non_null(strstr(msg, "VM.Monitor"));
                                else if (t == HMP_TIER_ROOT)
                                        assert_non_null(strstr(msg, "root-only"));
                                else
                                        assert_non_null(strstr(msg, "Sys.Modify"));
                        }
                }
                assert_int_equal(policy_check_hmp(line, &root_caller, 0, msg, sizeof(msg)), 0);
        }
}

/* ===================== QMP ===================== */

static int qmp_rank(QmpTier t) {
        return (int) t; /* MONITOR < SYS_MODIFY < ROOT < RESERVED */
}

static void test_qmp_table_shape(void **state) {
        for (size_t i = 0; i < policy_qmp_commands_count; i++) {
                const QmpCommand *c = &policy_qmp_commands[i];

                if (i > 0)
                        assert_true(strcmp(policy_qmp_commands[i - 1].name, c->name) < 0);
                assert_true(c->tier >= 0 && c->tier < _QMP_TIER_MAX);
                assert_int_equal(policy_qmp_tier(c->name), c->tier);
                /* Root-only and reserved entries say why. */
                if (c->tier == QMP_TIER_ROOT || c->tier == QMP_TIER_RESERVED || c->tier == QMP_TIER_SYS_MODIFY)
                        assert_non_null(c->note);
                /* A typo would silently turn an entry into "unknown": every
                 * name is one QEMU 7.2 has. */
                if (!IN_LIST(qemu72_qmp, c->name))
                        fail_msg("%s is not a QEMU 7.2 QMP command", c->name);
        }
        assert_string_equal(qmp_tier_to_string(QMP_TIER_MONITOR), "VM.Monitor");
        assert_string_equal(qmp_tier_to_string(QMP_TIER_SYS_MODIFY), "Sys.Modify");
        assert_string_equal(qmp_tier_to_string(QMP_TIER_ROOT), "root");
        assert_string_equal(qmp_tier_to_string(QMP_TIER_RESERVED), "reserved");
        assert_null(qmp_tier_to_string(_QMP_TIER_MAX));
        assert_int_equal(ELEMENTSOF(qemu72_qmp), 216);
}

static void test_qmp_table_matches_expectation(void **state) {
        size_t counts[_QMP_TIER_MAX] = {};

        for (size_t i = 0; i < ELEMENTSOF(expect_qmp_reserved); i++)
                assert_int_equal(policy_qmp_tier(expect_qmp_reserved[i]), QMP_TIER_RESERVED);
        for (size_t i = 0; i < ELEMENTSOF(expect_qmp_sysmod); i++)
                assert_int_equal(policy_qmp_tier(expect_qmp_sysmod[i]), QMP_TIER_SYS_MODIFY);
        for (size_t i = 0; i < ELEMENTSOF(expect_qmp_monitor); i++)
                assert_int_equal(policy_qmp_tier(expect_qmp_monitor[i]), QMP_TIER_MONITOR);

        for (size_t i = 0; i < policy_qmp_commands_count; i++)
                counts[policy_qmp_commands[i].tier]++;
        assert_int_equal(counts[QMP_TIER_RESERVED], ELEMENTSOF(expect_qmp_reserved));
        assert_int_equal(counts[QMP_TIER_SYS_MODIFY], ELEMENTSOF(expect_qmp_sysmod));
        assert_int_equal(counts[QMP_TIER_MONITOR], ELEMENTSOF(expect_qmp_monitor));

        /* Every other QEMU 7.2 command is root-only. */
        for (size_t i = 0; i < ELEMENTSOF(qemu72_qmp); i++) {
                const char *n = qemu72_qmp[i];

                if (IN_LIST(expect_qmp_reserved, n) || IN_LIST(expect_qmp_sysmod, n) || IN_LIST(expect_qmp_monitor, n))
                        continue;
                if (policy_qmp_tier(n) != QMP_TIER_ROOT)
                        fail_msg("%s should be root-only", n);
        }

        /* Read-only by name: the VM.Monitor tier holds queries only. */
        for (size_t i = 0; i < ELEMENTSOF(expect_qmp_monitor); i++) {
                const char *n = expect_qmp_monitor[i];

                assert_true(startswith(n, "query-") || startswith(n, "x-query-") || streq(n, "qom-list-types") ||
                            streq(n, "trace-event-get-state"));
        }

        static const char *const unknown[] = {
                "", "QUERY-STATUS", "query_status", "query-status ", "query-events", "query-cpus",
                "x-exit-preconfig", "frobnicate", "human_monitor_command", "qmp-capabilities", "Quit",
        };
        for (size_t i = 0; i < ELEMENTSOF(unknown); i++)
                assert_int_equal(policy_qmp_tier(unknown[i]), QMP_TIER_ROOT);
        assert_int_equal(policy_qmp_tier(NULL), QMP_TIER_ROOT);
        assert_int_equal(policy_qmp_tier("human-monitor-command"), QMP_TIER_ROOT);
}

static void test_qmp_not_weaker_than_hmp(void **state) {
        for (size_t i = 0; i < ELEMENTSOF(qmp_hmp_pairs); i++) {
                int q = qmp_rank(policy_qmp_tier(qmp_hmp_pairs[i].qmp));
                int h = (int) policy_hmp_line_tier(qmp_hmp_pairs[i].hmp, NULL, NULL);

                if (q < h)
                        fail_msg("QMP %s is weaker than HMP %s", qmp_hmp_pairs[i].qmp, qmp_hmp_pairs[i].hmp);
        }
}

static void test_qmp_shape(void **state) {
        static const char *const bad[] = {
                "[]", "{}", "null", "1", "\"query-status\"", "[{\"execute\":\"query-status\"}]",
                "{\"execute\":1}", "{\"execute\":null}", "{\"execute\":true}", "{\"execute\":[\"stop\"]}",
                "{\"execute\":{}}", "{\"execute\":\"\"}", "{\"execute\":\"query status\"}",
                "{\"execute\":\" query-status\"}", "{\"execute\":\"query-status\\n\"}",
                "{\"execute\":\"query-st\\u00e4tus\"}", "{\"execute\":\"query-status\\u0000quit\"}",
                "{\"execute\":\"query-status\\u007f\"}",
                "{\"execute\":\"query-status\",\"arguments\":[]}",
                "{\"execute\":\"query-status\",\"arguments\":null}",
                "{\"execute\":\"query-status\",\"arguments\":\"\"}",
                "{\"execute\":\"query-status\",\"arguments\":1}",
                "{\"execute\":\"query-status\",\"id\":1}", "{\"execute\":\"query-status\",\"id\":\"x\"}",
                "{\"execute\":\"query-status\",\"control\":{\"run-oob\":true}}",
                "{\"exec-oob\":\"query-status\"}", "{\"execute\":\"query-status\",\"exec-oob\":\"stop\"}",
                "{\"execute\":\"query-status\",\"Execute\":\"quit\"}",
                "{\"execute\":\"query-status\",\"arguments\":{},\"x\":0}",
                "{\"arguments\":{}}", "{\"Execute\":\"query-status\"}",
                /* Not QAPI names: no QEMU command is spelled so. */
                "{\"execute\":\"query-status!\"}", "{\"execute\":\"quit;\"}", "{\"execute\":\"a/b\"}",
                "{\"execute\":\"query-status\\\"\"}", "{\"execute\":\"{quit}\"}", "{\"execute\":\"q'\"}",
        };
        char msg[256];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                /* Validation first: the same for root and for the privilegeless. */
                assert_int_equal(qmp(bad[i], &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
                assert_sentence(msg);
                assert_int_equal(qmp(bad[i], &user_caller, 0, msg, sizeof(msg)), -EINVAL);
                assert_int_equal(qmp(bad[i], &user_caller, PRIV_ALL, NULL, 0), -EINVAL);
        }
        assert_int_equal(policy_check_qmp(NULL, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        json_t *j = parse("{\"execute\":\"query-status\"}");
        assert_int_equal(policy_check_qmp(j, NULL, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        json_decref(j);

        /* Names up to POLICY_QMP_NAME_MAX characters; longer ones are malformed. */
        char cmd[POLICY_QMP_NAME_MAX + 64], name[POLICY_QMP_NAME_MAX + 2];
        memset(name, 'a', POLICY_QMP_NAME_MAX);
        name[POLICY_QMP_NAME_MAX] = '\0';
        snprintf(cmd, sizeof(cmd), "{\"execute\":\"%s\"}", name);
        assert_int_equal(qmp(cmd, &root_caller, PRIV_ALL, msg, sizeof(msg)), 0);
        assert_int_equal(qmp(cmd, &user_caller, PRIV_ALL, msg, sizeof(msg)), -EACCES);
        strcat(name, "a");
        snprintf(cmd, sizeof(cmd), "{\"execute\":\"%s\"}", name);
        assert_int_equal(qmp(cmd, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        assert_sentence(msg);
        assert_int_equal(qmp(cmd, &user_caller, 0, msg, sizeof(msg)), -EINVAL);
        assert_int_equal(qmp("{\"execute\":\"__org.example_cmd-2\"}", &root_caller, 0, msg, sizeof(msg)), 0);

        /* Good shapes. */
        assert_int_equal(qmp("{\"execute\":\"query-status\"}", &user_caller, MON, msg, sizeof(msg)), 0);
        assert_string_equal(msg, "");
        assert_int_equal(qmp("{\"execute\":\"query-status\",\"arguments\":{}}", &user_caller, MON, msg, sizeof(msg)), 0);
        assert_int_equal(qmp("{\"arguments\":{\"x\":[1]},\"execute\":\"query-block\"}", &user_caller, MON, msg, sizeof(msg)), 0);
}

static void test_qmp_reserved(void **state) {
        char msg[256], cmd[128];

        for (size_t i = 0; i < ELEMENTSOF(expect_qmp_reserved); i++) {
                snprintf(cmd, sizeof(cmd), "{\"execute\":\"%s\",\"arguments\":{}}", expect_qmp_reserved[i]);
                assert_int_equal(qmp(cmd, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EPERM);
                assert_non_null(strstr(msg, "reserved for the supervisor"));
                assert_non_null(strstr(msg, expect_qmp_reserved[i]));
                assert_sentence(msg);
                assert_int_equal(qmp(cmd, &user_caller, PRIV_ALL, msg, sizeof(msg)), -EPERM);
                /* Reserved is decided before VM.Monitor. */
                assert_int_equal(qmp(cmd, &user_caller, 0, msg, sizeof(msg)), -EPERM);
        }
        assert_int_equal(qmp("{\"execute\":\"quit\"}", &root_caller, 0, msg, sizeof(msg)), -EPERM);
        assert_string_equal(msg, "Command 'quit' is reserved for the supervisor.");
}

static void test_qmp_tiers(void **state) {
        char msg[256];

        assert_int_equal(qmp("{\"execute\":\"query-status\"}", &user_caller, 0, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "VM.Monitor privilege required.");
        assert_int_equal(qmp("{\"execute\":\"query-status\"}", &user_caller, PRIV_ALL & ~MON, msg, sizeof(msg)), -EACCES);
        assert_int_equal(qmp("{\"execute\":\"query-status\"}", &user_caller, MON, msg, sizeof(msg)), 0);

        assert_int_equal(qmp("{\"execute\":\"stop\"}", &user_caller, MON, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'stop' requires the Sys.Modify privilege.");
        assert_int_equal(qmp("{\"execute\":\"stop\"}", &user_caller, SYSMOD, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "VM.Monitor privilege required.");
        assert_int_equal(qmp("{\"execute\":\"stop\"}", &user_caller, MONSYS, msg, sizeof(msg)), 0);

        assert_int_equal(qmp("{\"execute\":\"migrate\",\"arguments\":{\"uri\":\"exec:sh\"}}", &user_caller, PRIV_ALL, msg, sizeof(msg)),
                         -EACCES);
        assert_string_equal(msg, "Command 'migrate' is root-only.");
        assert_int_equal(qmp("{\"execute\":\"frobnicate\"}", &user_caller, PRIV_ALL, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'frobnicate' is root-only.");
        assert_int_equal(qmp("{\"execute\":\"frobnicate\"}", &root_caller, 0, msg, sizeof(msg)), 0);
        assert_int_equal(qmp("{\"execute\":\"migrate\"}", &root_caller, 0, msg, sizeof(msg)), 0);

        /* A long unknown name is shown truncated. */
        assert_int_equal(qmp("{\"execute\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
                             &user_caller, PRIV_ALL, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa...' is root-only.");
}

/* Every QEMU 7.2 command and every table entry, every kind of caller. */
static void test_qmp_matrix(void **state) {
        static const PrivSet privsets[] = { 0, MON, SYSMOD, MONSYS, PRIV_ALL & ~MON, PRIV_ALL & ~SYSMOD, PRIV_ALL };
        char cmd[256], msg[256];

        for (size_t i = 0; i < ELEMENTSOF(qemu72_qmp); i++) {
                const char *n = qemu72_qmp[i];

                if (streq(n, "human-monitor-command"))
                        continue; /* needs arguments; tested on its own */

                QmpTier t = IN_LIST(expect_qmp_reserved, n) ? QMP_TIER_RESERVED
                          : IN_LIST(expect_qmp_sysmod, n)   ? QMP_TIER_SYS_MODIFY
                          : IN_LIST(expect_qmp_monitor, n)  ? QMP_TIER_MONITOR
                                                            : QMP_TIER_ROOT;

                snprintf(cmd, sizeof(cmd), "{\"execute\":\"%s\"}", n);
                for (size_t k = 0; k < ELEMENTSOF(privsets); k++) {
                        PrivSet p = privsets[k];
                        int want = t == QMP_TIER_RESERVED ? -EPERM
                                 : !(p & MON) ? -EACCES
                                 : t == QMP_TIER_MONITOR ? 0
                                 : t == QMP_TIER_SYS_MODIFY && (p & SYSMOD) ? 0 : -EACCES;

                        assert_int_equal(qmp(cmd, &user_caller, p, msg, sizeof(msg)), want);
                        if (want < 0)
                                assert_sentence(msg);
                }
                assert_int_equal(qmp(cmd, &root_caller, 0, msg, sizeof(msg)), t == QMP_TIER_RESERVED ? -EPERM : 0);
        }
}

static void test_qmp_human_monitor_command(void **state) {
        char msg[256];

        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info status\"}}",
                             &user_caller, MON, msg, sizeof(msg)), 0);
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info status\"}}",
                             &user_caller, 0, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "VM.Monitor privilege required.");
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"migrate exec:sh\"}}",
                             &user_caller, PRIV_ALL, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'migrate' is root-only.");
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"migrate exec:sh\"}}",
                             &root_caller, 0, msg, sizeof(msg)), 0);
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"stop\"}}",
                             &user_caller, MON, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'stop' requires the Sys.Modify privilege.");
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"stop\",\"cpu-index\":0}}",
                             &user_caller, MONSYS, msg, sizeof(msg)), 0);
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"\\tq\"}}",
                             &user_caller, MONSYS, msg, sizeof(msg)), -EACCES);
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"\\nq\"}}",
                             &user_caller, MONSYS, msg, sizeof(msg)), -EINVAL);
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"\\nq\"}}",
                             &root_caller, 0, msg, sizeof(msg)), 0);
        assert_int_equal(qmp("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"help\"}}",
                             &user_caller, MON, msg, sizeof(msg)), 0);

        static const char *const bad[] = {
                "{\"execute\":\"human-monitor-command\"}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":1}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":null}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":[\"info\"]}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info\",\"cpu-index\":\"0\"}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info\",\"cpu-index\":0.5}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info\",\"x\":0}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"cpu-index\":0}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info\\u0000quit\"}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"\"}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"   \"}}",
                "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info\"},\"id\":1}",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(qmp(bad[i], &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
                assert_sentence(msg);
                assert_int_equal(qmp(bad[i], &user_caller, 0, msg, sizeof(msg)), -EINVAL);
        }
}

/* Keys with an embedded NUL cannot come from jansson's parser, but an object
 * built in code can hold them; a C string view would read "execute". */
static void test_file_transfer(void **state) {
        char msg[256];

        assert_int_equal(policy_check_file_transfer(false, &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof msg), 0);
        assert_int_equal(policy_check_file_transfer(true, &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof msg),
                         -EACCES);
        assert_non_null(strstr(msg, "VM.GuestAgent.FileWrite"));
        assert_int_equal(policy_check_file_transfer(true, &user_caller, PRIV_BIT(PRIV_GA_FILEWRITE), msg, sizeof msg), 0);
        assert_int_equal(policy_check_file_transfer(false, &user_caller, PRIV_BIT(PRIV_GA_FILEWRITE), msg, sizeof msg),
                         -EACCES);
        assert_non_null(strstr(msg, "VM.GuestAgent.FileRead"));
        for (int w = 0; w < 2; w++) {
                assert_int_equal(policy_check_file_transfer(w, &user_caller, PRIV_BIT(PRIV_GA_UNRESTRICTED), msg, sizeof msg), 0);
                assert_int_equal(policy_check_file_transfer(w, &root_caller, 0, msg, sizeof msg), 0);
                /* Every other privilege together still grants neither without its own. */
                PrivSet others = PRIV_ALL & ~PRIV_BIT(PRIV_GA_UNRESTRICTED) &
                                 ~PRIV_BIT(w ? PRIV_GA_FILEWRITE : PRIV_GA_FILEREAD);
                assert_int_equal(policy_check_file_transfer(w, &user_caller, others, msg, sizeof msg), -EACCES);
        }
}

static void test_json_keys_with_nul(void **state) {
        char msg[256];
        json_t *o = json_object(), *args;

        assert_int_equal(json_object_setn_new(o, "execute\0x", 9, json_string("quit")), 0);
        assert_int_equal(json_object_set_new(o, "execute", json_string("query-status")), 0);
        assert_int_equal(policy_check_qmp(o, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        assert_int_equal(policy_check_qga(o, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        json_decref(o);

        o = parse("{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info\"}}");
        args = json_object_get(o, "arguments");
        assert_int_equal(policy_check_qmp(o, &user_caller, MON, msg, sizeof(msg)), 0);
        assert_int_equal(json_object_setn_new(args, "command-line\0", 13, json_string("quit")), 0);
        assert_int_equal(policy_check_qmp(o, &user_caller, MON, msg, sizeof(msg)), -EINVAL);
        json_decref(o);

        o = parse("{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/etc/hostname\"}}");
        args = json_object_get(o, "arguments");
        assert_int_equal(policy_check_qga(o, &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof(msg)), 0);
        assert_int_equal(json_object_setn_new(args, "mode\0", 5, json_string("w")), 0);
        assert_int_equal(policy_check_qga(o, &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof(msg)), -EINVAL);
        json_decref(o);

        o = parse("{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":1}}");
        args = json_object_get(o, "arguments");
        assert_int_equal(json_object_setn_new(args, "count\0", 6, json_integer(INT64_C(1) << 40)), 0);
        assert_int_equal(policy_check_qga(o, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        json_decref(o);
}

/* ===================== guest agent ===================== */

/* The privileges that grant a command, from the lists above. */
static PrivSet expect_qga_privs(const char *n) {
        PrivSet p = 0;

        if (IN_LIST(expect_qga_audit, n))
                p |= PRIV_BIT(PRIV_GA_AUDIT);
        if (IN_LIST(expect_qga_fileread, n))
                p |= PRIV_BIT(PRIV_GA_FILEREAD);
        if (IN_LIST(expect_qga_filewrite, n))
                p |= PRIV_BIT(PRIV_GA_FILEWRITE);
        if (IN_LIST(expect_qga_fsmgmt, n))
                p |= PRIV_BIT(PRIV_GA_FSMGMT);
        if (IN_LIST(expect_qga_power, n))
                p |= PRIV_BIT(PRIV_VM_POWERMGMT);
        if (p != 0 || IN_LIST(expect_qga_unrestricted_only, n))
                p |= PRIV_BIT(PRIV_GA_UNRESTRICTED);
        return p;
}

/* ---- what QEMU's parser would read differently (common/json-wire.c) ---- */

/* {"execute":NAME,"arguments":{"x":[[...[1]...]]}} with k arrays: depth k + 2. */
static char *nested_cmd(const char *execute, unsigned k) {
        char *s = malloc(64 + strlen(execute) + 2 * (size_t) k);
        size_t n;

        assert_non_null(s);
        n = (size_t) sprintf(s, "{\"execute\":\"%s\",\"arguments\":{\"x\":", execute);
        memset(s + n, '[', k);
        n += k;
        s[n++] = '1';
        memset(s + n, ']', k);
        n += k;
        strcpy(s + n, "}}");
        return s;
}

static void test_forwarded_depth(void **state) {
        char msg[256];

        for (unsigned k = 0; k <= JSON_WIRE_DEPTH_MAX - 2; k += 31) {
                _cleanup_free_ char *q = nested_cmd("query-status", k), *g = nested_cmd("guest-ping", k);
                assert_int_equal(qmp(q, &user_caller, MON, msg, sizeof(msg)), 0);
                assert_int_equal(qga(g, &user_caller, PRIV_BIT(PRIV_GA_AUDIT), msg, sizeof(msg)), 0);
        }
        {
                _cleanup_free_ char *q = nested_cmd("query-status", JSON_WIRE_DEPTH_MAX - 2);
                assert_int_equal(qmp(q, &root_caller, PRIV_ALL, msg, sizeof(msg)), 0);
        }
        /* One level more, and the 1025-level shape that made QEMU run what followed:
         * InvalidArgs for everyone, before any privilege is looked at. */
        for (unsigned k = JSON_WIRE_DEPTH_MAX - 1; k <= 2000; k = k < 1023 ? 1023 : k + 977) {
                _cleanup_free_ char *q = nested_cmd("query-status", k), *g = nested_cmd("guest-ping", k),
                                    *h = nested_cmd("human-monitor-command", k);
                assert_int_equal(qmp(q, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
                assert_sentence(msg);
                assert_non_null(strstr(msg, "nested deeper than 64 levels"));
                assert_int_equal(qmp(q, &user_caller, 0, msg, sizeof(msg)), -EINVAL);
                assert_int_equal(qmp(q, &user_caller, MON, msg, sizeof(msg)), -EINVAL);
                assert_int_equal(qmp(h, &user_caller, MONSYS, msg, sizeof(msg)), -EINVAL);
                assert_int_equal(qga(g, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
                assert_int_equal(qga(g, &user_caller, PRIV_BIT(PRIV_GA_AUDIT), msg, sizeof(msg)), -EINVAL);
                assert_int_equal(qga(g, &user_caller, 0, msg, sizeof(msg)), -EINVAL);
        }
        /* Objects count as well as arrays. */
        assert_int_equal(qmp("{\"execute\":\"query-status\",\"arguments\":{\"a\":{\"b\":[{\"c\":1}]}}}", &user_caller,
                             MON, msg, sizeof(msg)), 0);
}

static void test_forwarded_characters(void **state) {
        static const char *const bad[] = { "\\uFFFF", "\\uffff", "\\uFFFE", "\\uFDD0", "\\uFDEF", "\\uFDE0",
                                           "\\uD83F\\uDFFE", "\\uD83F\\uDFFF", "\\uDBFF\\uDFFF", "\\uDBFF\\uDFFE",
                                           "\xef\xbf\xbf", "\xef\xb7\x90", "\xf4\x8f\xbf\xbe", "a\\u0000b" };
        static const char *const good[] = { "\\uFFFD", "\\uFDCF", "\\uFDF0", "\\uD83D\\uDE00", "\\uFEFF",
                                            "\\u2028", "\xef\xbf\xbd", "\\u0001" };
        char cmd[512], msg[256];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                for (size_t j = 0; j < 3; j++) {
                        if (j == 1 && strstr(bad[i], "u0000"))
                                continue; /* jansson holds no key with a NUL */
                        if (j == 0)
                                snprintf(cmd, sizeof cmd, "{\"execute\":\"query-status\",\"arguments\":{\"x\":\"%s\"}}", bad[i]);
                        else if (j == 1)
                                snprintf(cmd, sizeof cmd, "{\"execute\":\"query-status\",\"arguments\":{\"%s\":1}}", bad[i]);
                        else
                                snprintf(cmd, sizeof cmd, "{\"execute\":\"query-status\",\"arguments\":{\"x\":[1,{\"y\":[\"a%sb\"]}]}}", bad[i]);
                        if (qmp(cmd, &root_caller, PRIV_ALL, msg, sizeof(msg)) != -EINVAL)
                                fail_msg("not refused: %s", cmd);
                        assert_sentence(msg);
                        assert_int_equal(qmp(cmd, &user_caller, 0, msg, sizeof(msg)), -EINVAL);
                        assert_int_equal(qmp(cmd, &user_caller, MON, msg, sizeof(msg)), -EINVAL);
                }
                snprintf(cmd, sizeof cmd, "{\"execute\":\"human-monitor-command\",\"arguments\":{\"command-line\":\"info status %s\"}}", bad[i]);
                assert_int_equal(qmp(cmd, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
                snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/tmp/%s\"}}", bad[i]);
                assert_int_equal(qga(cmd, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
                assert_int_equal(qga(cmd, &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof(msg)), -EINVAL);
                snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-ping\",\"arguments\":{\"x\":\"%s\"}}", bad[i]);
                assert_int_equal(qga(cmd, &user_caller, 0, msg, sizeof(msg)), -EINVAL);
        }
        for (size_t i = 0; i < ELEMENTSOF(good); i++) {
                snprintf(cmd, sizeof cmd, "{\"execute\":\"query-status\",\"arguments\":{\"x\":\"%s\",\"%s\":1}}",
                         good[i], good[i]);
                assert_int_equal(qmp(cmd, &user_caller, MON, msg, sizeof(msg)), 0);
                snprintf(cmd, sizeof cmd, "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/tmp/%s\"}}", good[i]);
                assert_int_equal(qga(cmd, &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof(msg)), 0);
        }
}

static int line(const char *s) {
        return json_wire_check_line(s, strlen(s), JSON_WIRE_DEPTH_MAX);
}

static void test_json_wire_line(void **state) {
        static const char *const ok[] = {
                "{}", "{\"execute\":\"x\"}", "{\"execute\":\"x\",\"arguments\":{\"a\":[1,-2.5e-3,1E+300,true,false,null]},\"id\":9007199254740991}",
                "{\"a\":\"\\u0001\\n\\t\\\"\\\\\\/\\b\\f\\r\"}", "{\"a\":\"\xc3\xa9\xef\xbf\xbd\xf0\x9f\x98\x80\"}",
                "{\"a\":\"\\uD83D\\uDE00\\uFFFD\\uFDCF\"}", "{ \"a\" : [ ] }",
        };
        static const struct {
                const char *s;
                int r;
        } bad[] = {
                { "", -EINVAL }, { " ", -EINVAL }, { "[1]", -EINVAL }, { "1", -EINVAL }, { "\"x\"", -EINVAL },
                { "{}{}", -EINVAL }, { "{} {\"execute\":\"quit\"}", -EINVAL }, { "{\"a\":[}", -EINVAL },
                { "{\"a\":1]", -EINVAL }, { "{\"a\":\"x}", -EINVAL }, { "{\"a\":1}}", -EINVAL }, { "{\"a\":\"\\", -EINVAL },
                { "{\"a\":\"\\u0000\"}", -EILSEQ }, { "{\"a\":\"\\uD800\"}", -EILSEQ }, { "{\"a\":\"\\uDC00\"}", -EILSEQ },
                { "{\"a\":\"\\uD800\\u0041\"}", -EILSEQ }, { "{\"a\":\"\\uD800x\"}", -EILSEQ },
                { "{\"a\":\"\\uFFFF\"}", -EILSEQ }, { "{\"a\":\"\\uFDD0\"}", -EILSEQ },
                { "{\"a\":\"\\uDBFF\\uDFFE\"}", -EILSEQ }, { "{\"a\":\"\\u12\"}", -EILSEQ }, { "{\"a\":\"\\uZZZZ\"}", -EILSEQ },
                { "{\"a\":\"\\'\"}", -EILSEQ }, { "{\"a\":\"\\x41\"}", -EILSEQ },
                { "{\"a\":\"\xef\xbf\xbf\"}", -EILSEQ }, { "{\"a\":\"\xef\xb7\xaf\"}", -EILSEQ },
                { "{\"a\":\"\x01\"}", -EILSEQ }, { "{\"a\":\"\x1f\"}", -EILSEQ }, { "{\"a\":\"\xc0\x80\"}", -EILSEQ },
                { "{\"a\":\"\xed\xa0\x80\"}", -EILSEQ }, { "{\"a\":\"\xf4\x90\x80\x80\"}", -EILSEQ },
                { "{\"a\":\"\xff\"}", -EILSEQ }, { "{\"a\":\"\xe2\x82\"}", -EILSEQ }, { "{\"a\":\xff}", -EILSEQ },
                { "{'a':1}", -EILSEQ }, { "{\"a\":1}\n", -EINVAL }, { "{\"a\":\n1}", -EILSEQ }, { "{\t\"a\":1}", -EILSEQ },
                { "{\"a\":%s}", -EILSEQ },
        };

        for (size_t i = 0; i < ELEMENTSOF(ok); i++)
                assert_int_equal(line(ok[i]), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                if (line(bad[i].s) != bad[i].r)
                        fail_msg("%zu: %s: %d, wanted %d", i, bad[i].s, line(bad[i].s), bad[i].r);
        }

        /* Depth: 64 opened containers pass, 65 do not. */
        char deep[256];
        size_t n = 0;
        deep[n++] = '{';
        deep[n++] = '"';
        deep[n++] = 'a';
        deep[n++] = '"';
        deep[n++] = ':';
        for (unsigned i = 1; i < JSON_WIRE_DEPTH_MAX; i++)
                deep[n++] = '[';
        for (unsigned i = 1; i < JSON_WIRE_DEPTH_MAX; i++)
                deep[n++] = ']';
        deep[n++] = '}';
        assert_int_equal(json_wire_check_line(deep, n, JSON_WIRE_DEPTH_MAX), 0);
        assert_int_equal(json_wire_check_line(deep, n, JSON_WIRE_DEPTH_MAX - 1), -E2BIG);
        assert_int_equal(json_wire_check_line(deep, n, 65), -EINVAL);

        /* Tokens: QEMU's streamer resets past 2 Mi; the limit is 1 Mi. */
        size_t big = 2U * JSON_WIRE_TOKENS_MAX + 16;
        _cleanup_free_ char *many = malloc(big);
        assert_non_null(many);
        memcpy(many, "{\"a\":[", 6);
        n = 6;
        while (n + 3 < big - 4) {
                many[n++] = '0';
                many[n++] = ',';
        }
        many[n++] = '0';
        many[n++] = ']';
        many[n++] = '}';
        assert_int_equal(json_wire_check_line(many, n, JSON_WIRE_DEPTH_MAX), -EMSGSIZE);
        assert_int_equal(json_wire_check_line(many, 2 * 512 * 1024, JSON_WIRE_DEPTH_MAX), -EINVAL); /* cut short */
}

/* jansson's compact output of any value that passes json_wire_check_value() passes
 * json_wire_check_line(): the two checks agree. */
static void test_json_wire_agree(void **state) {
        static const char *const values[] = {
                "{\"a\":\"\\u0001\\u001f\\\"\\\\/\"}", "{\"\\u00e9\":[1.5,-0.0,1e-300,12345678901234567,true,null]}",
                "{\"a\":\"\\uD83D\\uDE00\\uFFFD\\u2028\\u007f\"}", "{\"a\":{\"b\":{\"c\":[[[]]]}}}",
        };

        for (size_t i = 0; i < ELEMENTSOF(values); i++) {
                json_t *v = parse(values[i]);
                char *s;

                assert_int_equal(json_wire_check_value(v, JSON_WIRE_DEPTH_MAX), 0);
                s = json_dumps(v, JSON_COMPACT);
                assert_non_null(s);
                assert_int_equal(line(s), 0);
                free(s);
                json_decref(v);
        }
        json_t *nul = parse("{\"a\":\"x\\u0000y\"}");
        assert_int_equal(json_wire_check_value(nul, JSON_WIRE_DEPTH_MAX), -EILSEQ);
        json_decref(nul);
        assert_int_equal(json_wire_check_value(NULL, JSON_WIRE_DEPTH_MAX), -EINVAL);
}

static void test_qga_table_shape(void **state) {
        size_t listed = 0;

        for (size_t i = 0; i < policy_qga_commands_count; i++) {
                const QgaCommand *c = &policy_qga_commands[i];

                if (i > 0)
                        assert_true(strcmp(policy_qga_commands[i - 1].name, c->name) < 0);
                assert_ptr_equal(policy_qga_lookup(c->name), c);
                assert_true(startswith(c->name, "guest-"));
                assert_int_equal(c->any_of & ~PRIV_ALL, 0);
                if (c->reserved)
                        assert_int_equal(c->any_of, 0);
                if (c->any_of == 0)
                        assert_non_null(c->note); /* root-only entries say why */
                /* Every table entry is a real agent command. */
                assert_true(IN_LIST(qemu72_qga, c->name) || IN_LIST(later_qga, c->name) ||
                            IN_LIST(expect_qga_audit, c->name));
        }

        /* The table is exactly the expectation lists. */
        for (size_t i = 0; i < policy_qga_commands_count; i++) {
                const QgaCommand *c = &policy_qga_commands[i];

                if (IN_LIST(expect_qga_reserved, c->name)) {
                        assert_true(c->reserved);
                        continue;
                }
                assert_false(c->reserved);
                if (IN_LIST(expect_qga_root_only, c->name))
                        assert_int_equal(c->any_of, 0);
                else
                        assert_int_equal(c->any_of, expect_qga_privs(c->name));
                listed++;
        }
        assert_int_equal(listed + ELEMENTSOF(expect_qga_reserved), policy_qga_commands_count);

        /* Every command of QEMU 7.2's agent, of the reference schema and the
         * later read-only ones is in the table. */
        for (size_t i = 0; i < ELEMENTSOF(qemu72_qga); i++)
                assert_non_null(policy_qga_lookup(qemu72_qga[i]));
        for (size_t i = 0; i < ELEMENTSOF(schema_qga); i++)
                assert_non_null(policy_qga_lookup(schema_qga[i]));
        for (size_t i = 0; i < ELEMENTSOF(later_qga); i++)
                assert_non_null(policy_qga_lookup(later_qga[i]));
        assert_null(policy_qga_lookup("guest-frobnicate"));
        assert_null(policy_qga_lookup(NULL));
}

static void qga_command_json(const char *name, char *buf, size_t size) {
        if (streq(name, "guest-file-read"))
                snprintf(buf, size, "{\"execute\":\"%s\",\"arguments\":{\"handle\":1,\"count\":4096}}", name);
        else
                snprintf(buf, size, "{\"execute\":\"%s\"}", name);
}

/* Each privilege alone grants exactly its commands. guest-file-open is
 * checked twice: opening for reading (FileRead) and for writing (FileWrite). */
static void qga_matrix_one(const char *n, const char *cmd, PrivSet expected) {
        bool reserved = IN_LIST(expect_qga_reserved, n);
        char msg[256];

        for (Privilege p = 0; p < _PRIV_MAX; p++) {
                int want = reserved ? -EPERM : (expected & PRIV_BIT(p)) ? 0 : -EACCES;
                int r = qga(cmd, &user_caller, PRIV_BIT(p), msg, sizeof(msg));

                if (r != want)
                        fail_msg("%s with %s: %d, expected %d", cmd, privilege_to_string(p), r, want);
                if (r < 0)
                        assert_sentence(msg);
        }
        /* Everything but the one privilege. */
        for (Privilege p = 0; p < _PRIV_MAX; p++) {
                int want = reserved ? -EPERM : (expected & ~PRIV_BIT(p)) ? 0 : -EACCES;

                assert_int_equal(qga(cmd, &user_caller, PRIV_ALL & ~PRIV_BIT(p), msg, sizeof(msg)), want);
        }
        assert_int_equal(qga(cmd, &user_caller, 0, msg, sizeof(msg)), reserved ? -EPERM : -EACCES);
        assert_int_equal(qga(cmd, &root_caller, 0, msg, sizeof(msg)), reserved ? -EPERM : 0);
}

static void test_qga_matrix(void **state) {
        const PrivSet un = PRIV_BIT(PRIV_GA_UNRESTRICTED);
        char cmd[256];

        for (size_t i = 0; i < policy_qga_commands_count; i++) {
                const char *n = policy_qga_commands[i].name;

                if (streq(n, "guest-file-open"))
                        continue;
                qga_command_json(n, cmd, sizeof(cmd));
                qga_matrix_one(n, cmd, expect_qga_privs(n));
        }
        qga_matrix_one("guest-frobnicate", "{\"execute\":\"guest-frobnicate\"}", 0);
        qga_matrix_one("guest-file-open", "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/x\"}}",
                       PRIV_BIT(PRIV_GA_FILEREAD) | un);
        qga_matrix_one("guest-file-open",
                       "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/x\",\"mode\":\"r+\"}}",
                       PRIV_BIT(PRIV_GA_FILEWRITE) | un);
        /* Both file privileges name guest-file-open. */
        assert_int_equal(expect_qga_privs("guest-file-open"),
                         PRIV_BIT(PRIV_GA_FILEREAD) | PRIV_BIT(PRIV_GA_FILEWRITE) | un);
}

static void test_qga_messages(void **state) {
        char msg[256];

        assert_int_equal(qga("{\"execute\":\"guest-exec\",\"arguments\":{\"path\":\"/bin/sh\"}}", &user_caller,
                             PRIV_ALL & ~PRIV_BIT(PRIV_GA_UNRESTRICTED), msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'guest-exec' requires the VM.GuestAgent.Unrestricted privilege.");
        assert_int_equal(qga("{\"execute\":\"guest-ping\"}", &user_caller, 0, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'guest-ping' requires the VM.GuestAgent.Audit privilege.");
        assert_int_equal(qga("{\"execute\":\"guest-file-close\",\"arguments\":{\"handle\":1}}", &user_caller, 0, msg,
                             sizeof(msg)), -EACCES);
        assert_string_equal(msg,
                            "Command 'guest-file-close' requires the VM.GuestAgent.FileRead or VM.GuestAgent.FileWrite privilege.");
        assert_int_equal(qga("{\"execute\":\"guest-shutdown\"}", &user_caller, 0, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'guest-shutdown' requires the VM.PowerMgmt privilege.");
        assert_int_equal(qga("{\"execute\":\"guest-set-time\"}", &user_caller, PRIV_ALL, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'guest-set-time' is root-only.");
        assert_int_equal(qga("{\"execute\":\"guest-frobnicate\"}", &user_caller, PRIV_ALL, msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'guest-frobnicate' is root-only.");
        assert_int_equal(qga("{\"execute\":\"guest-sync\",\"arguments\":{\"id\":1}}", &root_caller, PRIV_ALL, msg,
                             sizeof(msg)), -EPERM);
        assert_string_equal(msg, "Command 'guest-sync' is reserved for the supervisor.");
        assert_int_equal(qga("{\"execute\":\"guest-sync-delimited\",\"arguments\":{\"id\":1}}", &root_caller, PRIV_ALL,
                             msg, sizeof(msg)), -EPERM);
        assert_int_equal(qga("{\"execute\":\"guest-sync-delimited\"}", &user_caller, 0, msg, sizeof(msg)), -EPERM);
        assert_int_equal(qga("{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/x\",\"mode\":\"w\"}}",
                             &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Opening a guest file for writing requires the VM.GuestAgent.FileWrite privilege.");
        assert_int_equal(qga("{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/x\"}}",
                             &user_caller, PRIV_BIT(PRIV_GA_FILEWRITE), msg, sizeof(msg)), -EACCES);
        assert_string_equal(msg, "Command 'guest-file-open' requires the VM.GuestAgent.FileRead privilege.");
}

static void test_qga_file_open_modes(void **state) {
        static const char *const read_modes[] = { "r", "rb" };
        static const char *const write_modes[] = {
                "w", "wb", "a", "ab", "r+", "rb+", "r+b", "w+", "wb+", "w+b", "a+", "ab+", "a+b",
        };
        static const char *const bad_modes[] = {
                "\"\"", "\"R\"", "\"rw\"", "\"r \"", "\" r\"", "\"rt\"", "\"x\"", "\"wx\"", "\"r,ccs=UTF-8\"",
                "\"r\\u0000w\"", "\"re\"", "\"+\"", "\"b\"", "1", "null", "true", "[\"r\"]", "{}",
        };
        const PrivSet fr = PRIV_BIT(PRIV_GA_FILEREAD), fw = PRIV_BIT(PRIV_GA_FILEWRITE),
                      un = PRIV_BIT(PRIV_GA_UNRESTRICTED);
        char cmd[256], msg[256];

        for (size_t i = 0; i < ELEMENTSOF(read_modes); i++) {
                snprintf(cmd, sizeof(cmd), "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/x\",\"mode\":\"%s\"}}",
                         read_modes[i]);
                assert_int_equal(qga(cmd, &user_caller, fr, msg, sizeof(msg)), 0);
                assert_int_equal(qga(cmd, &user_caller, fw, msg, sizeof(msg)), -EACCES);
                assert_int_equal(qga(cmd, &user_caller, un, msg, sizeof(msg)), 0);
                assert_int_equal(qga(cmd, &user_caller, PRIV_ALL & ~(fr | un), msg, sizeof(msg)), -EACCES);
        }
        for (size_t i = 0; i < ELEMENTSOF(write_modes); i++) {
                /* Anything with w, a or + can write. */
                assert_non_null(strpbrk(write_modes[i], "wa+"));
                snprintf(cmd, sizeof(cmd), "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/x\",\"mode\":\"%s\"}}",
                         write_modes[i]);
                assert_int_equal(qga(cmd, &user_caller, fw, msg, sizeof(msg)), 0);
                assert_int_equal(qga(cmd, &user_caller, fr, msg, sizeof(msg)), -EACCES);
                assert_int_equal(qga(cmd, &user_caller, un, msg, sizeof(msg)), 0);
                assert_int_equal(qga(cmd, &user_caller, PRIV_ALL & ~(fw | un), msg, sizeof(msg)), -EACCES);
        }
        for (size_t i = 0; i < ELEMENTSOF(bad_modes); i++) {
                snprintf(cmd, sizeof(cmd), "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/x\",\"mode\":%s}}",
                         bad_modes[i]);
                assert_int_equal(qga(cmd, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
                assert_sentence(msg);
                assert_int_equal(qga(cmd, &user_caller, 0, msg, sizeof(msg)), -EINVAL);
        }
        /* No mode, or no arguments at all: the agent opens for reading. */
        assert_int_equal(qga("{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/x\"}}", &user_caller, fr, msg, sizeof(msg)), 0);
        assert_int_equal(qga("{\"execute\":\"guest-file-open\"}", &user_caller, fr, msg, sizeof(msg)), 0);
        assert_int_equal(qga("{\"execute\":\"guest-file-open\"}", &user_caller, fw, msg, sizeof(msg)), -EACCES);
}

static void test_qga_file_read_count(void **state) {
        static const struct {
                const char *count;
                int want;
        } cases[] = {
                { "50331648", 0 },
                { "50331647", 0 },
                { "0", 0 },
                { "1", 0 },
                { "50331649", -EINVAL },
                { "100000000", -EINVAL },
                { "9223372036854775807", -EINVAL },
                { "-1", -EINVAL },
                { "-9223372036854775808", -EINVAL },
                { "1.0", -EINVAL },
                { "4096.5", -EINVAL },
                { "1e3", -EINVAL },
                { "\"10\"", -EINVAL },
                { "true", -EINVAL },
                { "null", -EINVAL },
                { "[1]", -EINVAL },
                { "{}", -EINVAL },
        };
        char cmd[256], msg[256];

        assert_int_equal(QGA_FILE_READ_MAX, 50331648U);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                snprintf(cmd, sizeof(cmd), "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":1,\"count\":%s}}",
                         cases[i].count);
                /* A limit, not a privilege: root is held to it too. */
                assert_int_equal(qga(cmd, &root_caller, PRIV_ALL, msg, sizeof(msg)), cases[i].want);
                assert_int_equal(qga(cmd, &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof(msg)), cases[i].want);
                /* Validation precedes authorization. */
                assert_int_equal(qga(cmd, &user_caller, 0, msg, sizeof(msg)), cases[i].want == 0 ? -EACCES : -EINVAL);
                if (cases[i].want < 0)
                        assert_string_equal(msg, "guest-file-read \"count\" must be an integer from 0 to 50331648.");
        }
        /* Without count the agent reads its small default. */
        assert_int_equal(qga("{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":1}}", &user_caller,
                             PRIV_BIT(PRIV_GA_FILEREAD), msg, sizeof(msg)), 0);
        assert_int_equal(qga("{\"execute\":\"guest-file-read\"}", &user_caller, PRIV_BIT(PRIV_GA_FILEREAD), msg,
                             sizeof(msg)), 0);
        /* Only guest-file-read's count is limited. */
        assert_int_equal(qga("{\"execute\":\"guest-file-write\",\"arguments\":{\"handle\":1,\"buf-b64\":\"\",\"count\":99999999999}}",
                             &user_caller, PRIV_BIT(PRIV_GA_FILEWRITE), msg, sizeof(msg)), 0);
}

static void test_qga_shape(void **state) {
        static const char *const bad[] = {
                "[]", "{}", "\"guest-ping\"", "{\"execute\":1}", "{\"execute\":\"\"}",
                "{\"execute\":\"guest-ping\",\"arguments\":[]}", "{\"execute\":\"guest-ping\",\"arguments\":null}",
                "{\"execute\":\"guest-ping\",\"id\":1}", "{\"execute\":\"guest-ping\",\"control\":{}}",
                "{\"exec-oob\":\"guest-ping\"}", "{\"execute\":\"guest-ping \"}",
                "{\"execute\":\"guest-sync\",\"id\":1}", "{\"execute\":\"guest-ping\\u0000\"}",
                "{\"execute\":\"guest-p\\u00efng\"}",
        };
        char msg[256];

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                assert_int_equal(qga(bad[i], &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
                assert_sentence(msg);
                assert_int_equal(qga(bad[i], &user_caller, 0, msg, sizeof(msg)), -EINVAL);
        }
        assert_int_equal(policy_check_qga(NULL, &root_caller, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        assert_int_equal(qga("{\"execute\":\"guest-ping\",\"arguments\":{}}", &user_caller, PRIV_BIT(PRIV_GA_AUDIT), msg,
                             sizeof(msg)), 0);
        assert_string_equal(msg, "");
        json_t *j = parse("{\"execute\":\"guest-ping\"}");
        assert_int_equal(policy_check_qga(j, NULL, PRIV_ALL, msg, sizeof(msg)), -EINVAL);
        json_decref(j);
}

static void test_qga_reply_and_timeouts(void **state) {
        static const char *const no_reply[] = {
                "guest-shutdown", "guest-suspend-disk", "guest-suspend-ram", "guest-suspend-hybrid",
        };

        for (size_t i = 0; i < policy_qga_commands_count; i++) {
                const char *n = policy_qga_commands[i].name;

                assert_int_equal(policy_qga_no_reply(n), IN_LIST(no_reply, n));
                assert_true(policy_qga_timeout_usec(n) >= POLICY_QGA_TIMEOUT_DEFAULT_USEC);
        }
        assert_false(policy_qga_no_reply("guest-frobnicate"));
        assert_false(policy_qga_no_reply(NULL));

        assert_int_equal(policy_qga_timeout_usec("guest-ping"), 10 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-frobnicate"), 10 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec(NULL), 10 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-exec"), 10 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-fsfreeze-freeze"), 60 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-fsfreeze-freeze-list"), 60 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-fsfreeze-thaw"), 60 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-fsfreeze-status"), 10 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-fstrim"), 300 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-file-read"), 60 * USEC_PER_SEC);
        assert_int_equal(policy_qga_timeout_usec("guest-file-write"), 60 * USEC_PER_SEC);
}

/* ===================== documentation ===================== */

/* ===================== guest path confinement ===================== */

static void test_guest_path_normal(void **state) {
        static const char *const good[] = {
                "/", "/data", "/data/x", "/data/x.txt", "/data/.hidden", "/data/..x", "/data/x..", "/data/a b",
                "/data/-", "/tmp/allowed/f", "/data/\xc3\xa9", "/data/\xff\xfe", "/data/\x01", "/data/x:y",
                "/a/b/c/d/e/f", "/data/.a.", "/data/ x",
        };
        static const char *const bad[] = {
                "", "data", "data/x", "./data", "../data", "~/x", " /data", "//", "//data", "/data//x", "/data/",
                "/data/x/", "/.", "/..", "/./data", "/data/.", "/data/..", "/data/../etc/shadow", "/data/./x",
                "/data/x/..", "/data/...", "/data/. ", "/data/.. ", "/data/ ", "/data/  ", "/data\\x",
                "/data/..\\etc", "\\data", "C:\\data", "/data/x\\..\\..\\etc",
        };
        char buf[POLICY_GUEST_PATH_MAX + 2];

        for (size_t i = 0; i < ELEMENTSOF(good); i++)
                if (!policy_guest_path_is_normal(good[i]))
                        fail_msg("\"%s\" should be normal", good[i]);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                if (policy_guest_path_is_normal(bad[i]))
                        fail_msg("\"%s\" should not be normal", bad[i]);
        assert_false(policy_guest_path_is_normal(NULL));

        /* Long paths, NUL-free: exactly the limit is fine, one more is not. */
        buf[0] = '/';
        memset(buf + 1, 'a', POLICY_GUEST_PATH_MAX - 1);
        buf[POLICY_GUEST_PATH_MAX] = '\0';
        for (size_t i = 100; i < POLICY_GUEST_PATH_MAX; i += 100)
                buf[i] = '/';
        assert_true(policy_guest_path_is_normal(buf));
        buf[POLICY_GUEST_PATH_MAX] = 'a';
        buf[POLICY_GUEST_PATH_MAX + 1] = '\0';
        assert_false(policy_guest_path_is_normal(buf));
        /* A ".." deep in a long path. */
        buf[POLICY_GUEST_PATH_MAX] = '\0';
        memcpy(buf + 2000, "/../", 4);
        assert_false(policy_guest_path_is_normal(buf));
}

static void test_guest_path_within(void **state) {
        assert_true(policy_guest_path_within("/data", "/data"));
        assert_true(policy_guest_path_within("/data/x", "/data"));
        assert_true(policy_guest_path_within("/data/x/y", "/data"));
        assert_false(policy_guest_path_within("/database", "/data"));
        assert_false(policy_guest_path_within("/data2/x", "/data"));
        assert_false(policy_guest_path_within("/dat", "/data"));
        assert_false(policy_guest_path_within("/", "/data"));
        assert_false(policy_guest_path_within("/etc/shadow", "/data"));
        assert_false(policy_guest_path_within("/Data/x", "/data")); /* bytes, not case-folded */
        assert_true(policy_guest_path_within("/anything", "/"));
        assert_true(policy_guest_path_within("/", "/"));
        assert_true(policy_guest_path_within("/data/\xff", "/data"));
        assert_false(policy_guest_path_within("/data\xff", "/data"));
        assert_false(policy_guest_path_within(NULL, "/data"));
        assert_false(policy_guest_path_within("/data", NULL));
}

static void test_guest_path_check(void **state) {
        char *prefixes[] = { (char *) "/data", (char *) "/tmp/allowed", NULL };
        char *empty[] = { NULL };
        char *all[] = { (char *) "/", NULL };
        char msg[256];

        /* Unconfined VM, or root: anything, as before. */
        assert_int_equal(policy_check_guest_path("/etc/shadow", NULL, &user_caller, msg, sizeof msg), 0);
        assert_int_equal(policy_check_guest_path("relative/../x", NULL, &user_caller, msg, sizeof msg), 0);
        assert_int_equal(policy_check_guest_path("/etc/shadow", prefixes, &root_caller, msg, sizeof msg), 0);
        assert_int_equal(policy_check_guest_path("/data/../etc", prefixes, &root_caller, msg, sizeof msg), 0);

        /* Confined. */
        assert_int_equal(policy_check_guest_path("/data/x", prefixes, &user_caller, msg, sizeof msg), 0);
        assert_string_equal(msg, "");
        assert_int_equal(policy_check_guest_path("/data", prefixes, &user_caller, msg, sizeof msg), 0);
        assert_int_equal(policy_check_guest_path("/tmp/allowed/f", prefixes, &user_caller, msg, sizeof msg), 0);
        assert_int_equal(policy_check_guest_path("/database/x", prefixes, &user_caller, msg, sizeof msg), -EACCES);
        assert_string_equal(msg, "The guest path is outside the paths this VM allows for file access.");
        assert_int_equal(policy_check_guest_path("/etc/shadow", prefixes, &user_caller, msg, sizeof msg), -EACCES);
        assert_int_equal(policy_check_guest_path("/tmp/allowedx", prefixes, &user_caller, msg, sizeof msg), -EACCES);
        assert_int_equal(policy_check_guest_path("/tmp", prefixes, &user_caller, msg, sizeof msg), -EACCES);
        static const char *const invalid[] = {
                "/data/../etc/shadow", "/data/./x", "/data//x", "/data/", "data/x", "", "/data/x/..", "/data\\..\\x",
                "/data/.. ", "//data/x",
        };
        for (size_t i = 0; i < ELEMENTSOF(invalid); i++) {
                assert_int_equal(policy_check_guest_path(invalid[i], prefixes, &user_caller, msg, sizeof msg), -EINVAL);
                assert_sentence(msg);
        }
        assert_int_equal(policy_check_guest_path(NULL, prefixes, &user_caller, msg, sizeof msg), -EINVAL);
        assert_int_equal(policy_check_guest_path("/data/x", prefixes, NULL, msg, sizeof msg), -EINVAL);
        /* An empty list: nothing for anyone but root. */
        assert_int_equal(policy_check_guest_path("/data/x", empty, &user_caller, msg, sizeof msg), -EACCES);
        assert_int_equal(policy_check_guest_path("/data/x", empty, &root_caller, msg, sizeof msg), 0);
        /* "/": every normal path, still no "..". */
        assert_int_equal(policy_check_guest_path("/etc/shadow", all, &user_caller, msg, sizeof msg), 0);
        assert_int_equal(policy_check_guest_path("/etc/../x", all, &user_caller, msg, sizeof msg), -EINVAL);
}

static void test_qga_confined(void **state) {
        char *prefixes[] = { (char *) "/data", NULL };
        PrivSet fr = PRIV_BIT(PRIV_GA_FILEREAD), fw = PRIV_BIT(PRIV_GA_FILEWRITE), u = PRIV_BIT(PRIV_GA_UNRESTRICTED);
        char msg[256];
        static const struct {
                const char *json;
                PrivSet privs;
                int confined, unconfined;
        } cases[] = {
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/data/x\"}}", 0, -EACCES, -EACCES },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/data/x\"}}", 1, 0, 0 },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/etc/shadow\",\"mode\":\"w\"}}", 2, -EACCES, 0 },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/etc/shadow\",\"mode\":\"w\"}}", 3, -EACCES, 0 },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/data/../etc/shadow\",\"mode\":\"w\"}}", 2, -EINVAL, 0 },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/data/x\",\"mode\":\"a\"}}", 2, 0, 0 },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/database\"}}", 1, -EACCES, 0 },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":\"/data/x\\u0000/../../etc/shadow\"}}", 1, -EINVAL, -EINVAL },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{\"path\":1}}", 1, -EINVAL, 0 },
                { "{\"execute\":\"guest-file-open\",\"arguments\":{}}", 1, -EINVAL, 0 },
                { "{\"execute\":\"guest-file-open\"}", 1, -EINVAL, 0 },
                /* Other commands are not affected. */
                { "{\"execute\":\"guest-file-read\",\"arguments\":{\"handle\":1}}", 1, 0, 0 },
                { "{\"execute\":\"guest-ping\"}", 1, -EACCES, -EACCES },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                PrivSet privs = cases[i].privs == 0 ? 0 : cases[i].privs == 1 ? fr : cases[i].privs == 2 ? fw : u;
                json_t *cmd = json_loads(cases[i].json, JSON_ALLOW_NUL, NULL);

                assert_non_null(cmd);
                assert_int_equal(policy_check_qga_confined(cmd, &user_caller, privs, prefixes, msg, sizeof msg),
                                 cases[i].confined);
                if (cases[i].confined < 0)
                        assert_sentence(msg);
                /* Without confinement, exactly policy_check_qga(). */
                assert_int_equal(policy_check_qga_confined(cmd, &user_caller, privs, NULL, msg, sizeof msg),
                                 policy_check_qga(cmd, &user_caller, privs, NULL, 0));
                assert_int_equal(policy_check_qga(cmd, &user_caller, privs, NULL, 0), cases[i].unconfined);
                /* Root is never confined. */
                assert_int_equal(policy_check_qga_confined(cmd, &root_caller, 0, prefixes, msg, sizeof msg),
                                 policy_check_qga(cmd, &root_caller, 0, NULL, 0));
                json_decref(cmd);
        }
}

static void test_markdown_content(void **state) {
        _cleanup_free_ char *md = NULL;

        assert_int_equal(policy_render_markdown(&md), 0);
        assert_non_null(md);
        assert_int_equal(md[strlen(md) - 1], '\n');
        for (size_t i = 0; i < policy_hmp_commands_count; i++) {
                char row[160];

                if (policy_hmp_commands[i].reason)
                        snprintf(row, sizeof(row), "\n| `%s` | %s | %s |\n", policy_hmp_commands[i].name,
                                 hmp_tier_to_string(policy_hmp_commands[i].tier), policy_hmp_commands[i].reason);
                else
                        snprintf(row, sizeof(row), "\n| `%s` | %s | |\n", policy_hmp_commands[i].name,
                                 hmp_tier_to_string(policy_hmp_commands[i].tier));
                if (!strstr(md, row))
                        fail_msg("no row for %s", policy_hmp_commands[i].name);
        }
        for (size_t i = 0; i < policy_hmp_aliases_count; i++) {
                char row[64];

                snprintf(row, sizeof(row), "\n| `%s` | `%s` |\n", policy_hmp_aliases[i].alias, policy_hmp_aliases[i].command);
                assert_non_null(strstr(md, row));
        }
        for (size_t i = 0; i < policy_qmp_commands_count; i++) {
                char row[128];

                snprintf(row, sizeof(row), "\n| `%s` |", policy_qmp_commands[i].name);
                assert_non_null(strstr(md, row));
        }
        for (size_t i = 0; i < policy_qga_commands_count; i++) {
                char row[128];

                snprintf(row, sizeof(row), "\n| `%s` |", policy_qga_commands[i].name);
                assert_non_null(strstr(md, row));
        }
        /* Plain ASCII, so it reads the same everywhere. */
        for (const char *p = md; *p; p++)
                assert_true(*p == '\n' || (*p >= 0x20 && *p < 0x7f));
}

static char *read_file(const char *path) {
        _cleanup_fclose_ FILE *f = fopen(path, "re");
        char *buf = NULL;
        size_t size = 0;

        if (!f)
                return NULL;
        FILE *m = open_memstream(&buf, &size);
        assert_non_null(m);
        for (int c; (c = fgetc(f)) != EOF;)
                fputc(c, m);
        fclose(m);
        return buf;
}

static void test_markdown_matches_docs(void **state) {
        const char *srcdir = getenv("VMSUP_SRCDIR") ?: ".";
        const char *regen = getenv("VMSUP_REGEN_DOCS");
        _cleanup_free_ char *md = NULL, *path = NULL, *have = NULL;

        assert_int_equal(policy_render_markdown(&md), 0);
        assert_true(asprintf(&path, "%s/docs/permissions.md", srcdir) > 0);

        if (regen && streq(regen, "1")) {
                _cleanup_fclose_ FILE *f = fopen(path, "we");

                if (!f)
                        fail_msg("cannot write %s: %m", path);
                assert_int_equal(fputs(md, f) >= 0, true);
                assert_int_equal(fflush(f), 0);
                print_message("wrote %s\n", path);
                return;
        }

        have = read_file(path);
        if (!have || !streq(have, md)) {
                print_error("%s %s the permission tables in policy/;\n"
                            "regenerate with: VMSUP_REGEN_DOCS=1 ./build/tests/test-policy\n",
                            path, have ? "differs from" : "is missing, it documents");
                fail();
        }
}

int main(void) {
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_privilege_names),
                cmocka_unit_test(test_acl_user),
                cmocka_unit_test(test_acl_group),
                cmocka_unit_test(test_acl_union_and_edges),
                cmocka_unit_test(test_check_privilege),
                cmocka_unit_test(test_hmp_table_shape),
                cmocka_unit_test(test_hmp_table_matches_expectation),
                cmocka_unit_test(test_hmp_info_table),
                cmocka_unit_test(test_hmp_seed_strictness),
                cmocka_unit_test(test_hmp_qemu72_covered),
                cmocka_unit_test(test_hmp_aliases),
                cmocka_unit_test(test_hmp_unknown_is_root),
                cmocka_unit_test(test_hmp_command_name),
                cmocka_unit_test(test_hmp_name_fuzz),
                cmocka_unit_test(test_hmp_decision_fuzz),
                cmocka_unit_test(test_hmp_bypass_strings),
                cmocka_unit_test(test_hmp_long_lines),
                cmocka_unit_test(test_hmp_order_and_messages),
                cmocka_unit_test(test_hmp_matrix),
                cmocka_unit_test(test_qmp_table_shape),
                cmocka_unit_test(test_qmp_table_matches_expectation),
                cmocka_unit_test(test_qmp_not_weaker_than_hmp),
                cmocka_unit_test(test_qmp_shape),
                cmocka_unit_test(test_qmp_reserved),
                cmocka_unit_test(test_qmp_tiers),
                cmocka_unit_test(test_qmp_matrix),
                cmocka_unit_test(test_qmp_human_monitor_command),
                cmocka_unit_test(test_file_transfer),
                cmocka_unit_test(test_json_keys_with_nul),
                cmocka_unit_test(test_forwarded_depth),
                cmocka_unit_test(test_forwarded_characters),
                cmocka_unit_test(test_json_wire_line),
                cmocka_unit_test(test_json_wire_agree),
                cmocka_unit_test(test_qga_table_shape),
                cmocka_unit_test(test_qga_matrix),
                cmocka_unit_test(test_qga_messages),
                cmocka_unit_test(test_qga_file_open_modes),
                cmocka_unit_test(test_qga_file_read_count),
                cmocka_unit_test(test_qga_shape),
                cmocka_unit_test(test_qga_reply_and_timeouts),
                cmocka_unit_test(test_guest_path_normal),
                cmocka_unit_test(test_guest_path_within),
                cmocka_unit_test(test_guest_path_check),
                cmocka_unit_test(test_qga_confined),
                cmocka_unit_test(test_markdown_content),
                cmocka_unit_test(test_markdown_matches_docs),
        };

        return cmocka_run_group_tests(tests, NULL, NULL);
}

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The QMP permission table for org.vmsup.Monitor1.Execute.
 *
 * Rules that shaped it:
 *  - An explicit list, checked against QEMU 7.2's query-commands: read-only
 *    queries → VM.Monitor; a few harmless state changes → Sys.Modify; the
 *    supervisor's own commands → reserved; everything else, and anything
 *    unknown, → root.
 *  - No QMP command is weaker than its HMP counterpart: what HMP keeps to root
 *    (nmi, watchdog_action, qom-set, ...) QMP keeps to root too, otherwise the
 *    HMP table could be bypassed through Execute.
 *  - Queries reveal what HMP "info" (tier none) already reveals, e.g. image
 *    file names (query-block) and back-end socket paths (query-chardev): a
 *    stricter QMP tier would protect nothing. Queries that describe the host
 *    rather than this VM, or that act, are root-only.
 *  - No command reachable without root returns a host address: every x-query-*
 *    and query-* of the VM.Monitor tier was run against QEMU 7.2 with a guest
 *    and its reply searched for them; the one that has them
 *    (x-query-virtio-vhost-queue-status) is root-only, like gpa2hva.
 * Keep it sorted in strcmp() order: lookups are a binary search. */

#include "macro.h"
#include "policy.h"

#define MON(n, w)      { .name = (n), .tier = QMP_TIER_MONITOR, .note = (w) }
#define SYSMOD(n, w)   { .name = (n), .tier = QMP_TIER_SYS_MODIFY, .note = (w) }
#define ROOT(n, w)     { .name = (n), .tier = QMP_TIER_ROOT, .note = (w) }
#define RESERVED(n, w) { .name = (n), .tier = QMP_TIER_RESERVED, .note = (w) }

const QmpCommand policy_qmp_commands[] = {
        RESERVED("add-fd", "the supervisor passes descriptors"),
        ROOT("add_client", "connects a descriptor passed with getfd; OpenVNC is the door for that"),
        SYSMOD("announce-self", "as HMP announce_self"),
        SYSMOD("balloon", "as HMP balloon"),
        RESERVED("closefd", "the supervisor passes descriptors"),
        SYSMOD("cont", "as HMP cont"),
        ROOT("device-list-properties", "instantiates a device of any type to list it, a historical source of crashes"),
        SYSMOD("eject", "as HMP eject"),
        RESERVED("getfd", "the supervisor passes descriptors"),
        ROOT("human-monitor-command", "never judged by this table: its command-line is judged by the HMP table"),
        ROOT("inject-nmi", "as HMP nmi"),
        SYSMOD("input-send-event", "as HMP mouse_move, mouse_button and sendkey"),
        RESERVED("qmp_capabilities", "the supervisor negotiates the session"),
        ROOT("qom-get", "as HMP qom-get: reads secret objects' data (passphrases); no path check can single secrets out"),
        SYSMOD("qom-list", "as HMP qom-list"),
        ROOT("qom-list-properties", "instantiates an object of any type to list it, a historical source of crashes"),
        MON("qom-list-types", NULL),
        MON("query-acpi-ospm-status", NULL),
        MON("query-balloon", NULL),
        MON("query-block", "shows image file names, as HMP info block does"),
        MON("query-block-exports", NULL),
        MON("query-block-jobs", NULL),
        MON("query-blockstats", NULL),
        MON("query-chardev", "shows back-end paths, as HMP info chardev does"),
        MON("query-chardev-backends", NULL),
        MON("query-colo-status", NULL),
        MON("query-command-line-options", NULL),
        MON("query-commands", NULL),
        ROOT("query-cpu-definitions", "compares every CPU model with the host's CPU: describes the host"),
        ROOT("query-cpu-model-expansion", "probes the host's CPU by instantiating CPU objects"),
        MON("query-cpus-fast", NULL),
        MON("query-current-machine", NULL),
        MON("query-dirty-rate", NULL),
        MON("query-display-options", NULL),
        MON("query-dump", NULL),
        MON("query-dump-guest-memory-capability", NULL),
        ROOT("query-fdsets", "describes the descriptors the supervisor passed"),
        MON("query-hotpluggable-cpus", NULL),
        MON("query-iothreads", NULL),
        MON("query-jobs", NULL),
        MON("query-kvm", NULL),
        MON("query-machines", NULL),
        MON("query-memdev", NULL),
        MON("query-memory-devices", NULL),
        MON("query-memory-size-summary", NULL),
        MON("query-mice", NULL),
        MON("query-migrate", NULL),
        MON("query-migrate-capabilities", NULL),
        MON("query-migrate-parameters", NULL),
        MON("query-name", NULL),
        MON("query-named-block-nodes", "shows image file names, as HMP info block -n does"),
        MON("query-pci", NULL),
        MON("query-pr-managers", NULL),
        MON("query-qmp-schema", "about 200 KiB in QEMU 7.2, far below the reply limit"),
        MON("query-replay", NULL),
        MON("query-rocker", NULL),
        MON("query-rocker-of-dpa-flows", NULL),
        MON("query-rocker-of-dpa-groups", NULL),
        MON("query-rocker-ports", NULL),
        MON("query-rx-filter", "re-arms the NIC_RX_FILTER_CHANGED event, by design"),
        MON("query-sev", NULL),
        ROOT("query-sev-attestation-report", "has the SEV firmware sign a report: an action on the host"),
        ROOT("query-sev-capabilities", "describes the host's SEV platform"),
        ROOT("query-sev-launch-measure", "part of launch attestation, with root-only sev-inject-launch-secret"),
        MON("query-sgx", NULL),
        ROOT("query-sgx-capabilities", "describes the host's SGX platform"),
        MON("query-spice", NULL),
        MON("query-stats", NULL),
        MON("query-stats-schemas", NULL),
        MON("query-status", NULL),
        MON("query-target", NULL),
        MON("query-tpm", NULL),
        MON("query-tpm-models", NULL),
        MON("query-tpm-types", NULL),
        MON("query-uuid", NULL),
        MON("query-vcpu-dirty-limit", NULL),
        MON("query-version", NULL),
        MON("query-vm-generation-id", NULL),
        MON("query-vnc", NULL),
        MON("query-vnc-servers", NULL),
        MON("query-xen-replication-status", NULL),
        MON("query-yank", NULL),
        RESERVED("quit", "the supervisor stops QEMU (Stop, Shutdown)"),
        RESERVED("remove-fd", "the supervisor passes descriptors"),
        SYSMOD("send-key", "as HMP sendkey"),
        ROOT("set-action", "can turn the watchdog into an NMI injector, as HMP watchdog_action"),
        SYSMOD("set_link", "as HMP set_link"),
        SYSMOD("stop", "as HMP stop"),
        SYSMOD("system_powerdown", "as HMP system_powerdown"),
        SYSMOD("system_reset", "as HMP system_reset"),
        SYSMOD("system_wakeup", "as HMP system_wakeup"),
        MON("trace-event-get-state", NULL),
        ROOT("watchdog-set-action", "can turn the watchdog into an NMI injector, as HMP watchdog_action"),
        ROOT("x-debug-query-block-graph", "a debugging interface"),
        MON("x-query-irq", "HMP info irq"),
        MON("x-query-jit", "HMP info jit: translation statistics, no host addresses (checked in 7.2)"),
        MON("x-query-numa", "HMP info numa"),
        MON("x-query-opcount", "HMP info opcount"),
        MON("x-query-profile", "HMP info profile"),
        MON("x-query-ramblock", "HMP info ramblock: block offsets in QEMU's RAM address space, no host addresses (checked in 7.2)"),
        MON("x-query-rdma", "HMP info rdma"),
        MON("x-query-roms", "HMP info roms: firmware names and guest addresses (checked in 7.2)"),
        MON("x-query-usb", "HMP info usb"),
        MON("x-query-virtio", "HMP info virtio"),
        MON("x-query-virtio-queue-element", "HMP info virtio-queue-element: guest-physical descriptor addresses (checked in 7.2)"),
        MON("x-query-virtio-queue-status", "HMP info virtio-queue-status: guest-physical ring addresses, no host addresses (checked in 7.2)"),
        MON("x-query-virtio-status", "HMP info virtio-status"),
        ROOT("x-query-virtio-vhost-queue-status", "returns the host virtual addresses of the vhost rings, as gpa2hva would"),
};
const size_t policy_qmp_commands_count = ELEMENTSOF(policy_qmp_commands);

/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* vmsupctl stats and metrics: VM1.GetStats as "key value" lines or JSON, and as
 * metrics named after the Prometheus libvirt exporter's (libvirt_domain_* →
 * vmsup_domain_*), in the Prometheus text format (the default: node-exporter's
 * textfile collector and promtool read that one) or in OpenMetrics (# EOF at the
 * end, a counter's family named without its samples' _total, # UNIT). */

#include <inttypes.h>

#include "config.h"
#include "ctl.h"

static int get_stats(sd_bus *bus, const char *name, char **groups, json_t **ret) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_free_ char *dest = NULL;
        int r;

        if (asprintf(&dest, VM_BUS_PREFIX "%s", name) < 0)
                return ctl_bus_fail(-ENOMEM, name);
        r = sd_bus_message_new_method_call(bus, &m, ctl_dest(bus, dest), VM_OBJECT, VM_IFACE, "GetStats");
        if (r >= 0)
                r = sd_bus_message_append_strv(m, groups);
        if (r < 0)
                return ctl_bus_fail(r, name);
        r = sd_bus_call(bus, m, 0, &error, &reply);
        if (r < 0)
                return ctl_error_status(name, &error, r);
        r = ctl_json_from_message(reply, ret);
        if (r < 0)
                return ctl_bus_fail(r, name);
        return 0;
}

/* stats NAME [GROUP...] */
int verb_stats(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        json_auto_t *stats = NULL;
        const char *key;
        json_t *v;
        int r;

        r = ctl_bus_open_vm(args[0], &bus);
        if (r < 0)
                return -r;
        r = get_stats(bus, args[0], args + 1, &stats);
        if (r > 0)
                return r;
        if (arg.json)
                return ctl_print_json(stats, false);
        json_object_foreach(stats, key, v) {
                _cleanup_free_ char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
                printf("%s %s\n", key, s ?: "?");
        }
        return 0;
}

/* ---- metrics ---- */

typedef struct VmStats {
        char *name;
        json_t *stats;
} VmStats;

typedef enum FamilyKind {
        FAMILY_VM,    /* one sample per VM: key */
        FAMILY_STATE, /* vstate: libvirt's virDomainState number, labelled with vmsup's state */
        FAMILY_VCPU,  /* per vCPU: vcpu.N.<key> */
        FAMILY_BLOCK, /* per block device: block.N.<key>, labelled with block.N.name */
} FamilyKind;

typedef struct Family {
        const char *name;
        const char *type;
        const char *help;
        FamilyKind kind;
        const char *key;
        double scale; /* 0: the integer as is */
        const char *unit; /* OpenMetrics # UNIT: the name's suffix (before _total) */
} Family;

#define NS 1e-9
#define US 1e-6
#define KIB 1024.0

static const Family families[] = {
        { "vmsup_domain_info_vstate", "gauge",
          "Virtual machine state as libvirt numbers it (0 no state, 1 running, 3 paused, 4 shutting down, 5 shut off, 6 crashed, 7 suspended); the label is vmsup's state",
          FAMILY_STATE, NULL, 0, NULL },
        { "vmsup_domain_info_cpu_time_seconds_total", "counter", "CPU time used by QEMU's process", FAMILY_VM,
          "cpu.time", NS, "seconds" },
        { "vmsup_domain_info_virtual_cpus", "gauge", "Virtual CPUs QEMU runs", FAMILY_VM, "vcpu.current", 0, NULL },
        { "vmsup_domain_info_maximum_virtual_cpus", "gauge", "Virtual CPUs of the definition", FAMILY_VM,
          "vcpu.maximum", 0, NULL },
        { "vmsup_domain_info_maximum_memory_bytes", "gauge", "Memory of the definition", FAMILY_VM,
          "balloon.maximum", KIB, "bytes" },
        { "vmsup_domain_info_memory_usage_bytes", "gauge", "Memory the guest has (balloon actual)", FAMILY_VM,
          "balloon.current", KIB, "bytes" },
        { "vmsup_domain_memory_stats_rss_bytes", "gauge", "Resident memory of QEMU's process", FAMILY_VM,
          "balloon.rss", KIB, "bytes" },
        { "vmsup_domain_vcpu_time_seconds_total", "counter", "CPU time used by a virtual CPU's thread",
          FAMILY_VCPU, "time", NS, "seconds" },
        { "vmsup_domain_block_stats_read_bytes_total", "counter", "Bytes read from a block device", FAMILY_BLOCK,
          "rd.bytes", 0, "bytes" },
        { "vmsup_domain_block_stats_read_requests_total", "counter", "Read requests to a block device",
          FAMILY_BLOCK, "rd.reqs", 0, NULL },
        { "vmsup_domain_block_stats_write_bytes_total", "counter", "Bytes written to a block device",
          FAMILY_BLOCK, "wr.bytes", 0, "bytes" },
        { "vmsup_domain_block_stats_write_requests_total", "counter", "Write requests to a block device",
          FAMILY_BLOCK, "wr.reqs", 0, NULL },
        { "vmsup_domain_block_stats_flush_requests_total", "counter", "Flush requests to a block device",
          FAMILY_BLOCK, "fl.reqs", 0, NULL },
        { "vmsup_domain_agent_connected", "gauge", "1 when the guest agent answered its last sync", FAMILY_VM,
          "agent.connected", 0, NULL },
        { "vmsup_domain_agent_syncs_total", "counter", "Guest agent syncs sent", FAMILY_VM, "agent.syncs", 0, NULL },
        { "vmsup_domain_agent_sync_timeouts_total", "counter", "Guest agent syncs not answered in time", FAMILY_VM,
          "agent.sync-timeouts", 0, NULL },
        { "vmsup_domain_agent_timeouts_total", "counter", "Guest agent commands that timed out", FAMILY_VM,
          "agent.timeouts", 0, NULL },
        { "vmsup_domain_agent_protocol_errors_total", "counter", "Malformed guest agent replies", FAMILY_VM,
          "agent.protocol-errors", 0, NULL },
        { "vmsup_domain_agent_dropped_lines_total", "counter", "Guest agent lines nobody asked for, or too long",
          FAMILY_VM, "agent.dropped-lines", 0, NULL },
        { "vmsup_domain_agent_answered_total", "counter", "Guest agent commands answered", FAMILY_VM,
          "agent.answered", 0, NULL },
        { "vmsup_domain_agent_answer_seconds_total", "counter",
          "Time the guest agent took to answer them, each from its sync", FAMILY_VM, "agent.answer-time", US,
          "seconds" },
};

static int libvirt_state(const char *s) {
        static const struct {
                const char *state;
                int code;
        } map[] = {
                { "starting", 0 }, { "running", 1 }, { "paused", 3 },   { "shutting-down", 4 },
                { "stopping", 4 }, { "stopped", 5 }, { "crashed", 6 }, { "suspended", 7 },
        };
        for (size_t i = 0; s && i < ELEMENTSOF(map); i++)
                if (streq(s, map[i].state))
                        return map[i].code;
        return 0;
}

/* A label value in the text format: backslash, double quote and newline escaped. */
static void print_label_value(const char *s) {
        for (; *s; s++) {
                if (*s == '\\' || *s == '"')
                        printf("\\%c", *s);
                else if (*s == '\n')
                        fputs("\\n", stdout);
                else
                        putchar(*s);
        }
}

static void print_sample(const Family *f, const char *domain, const char *label, const char *label_value,
                         json_t *v) {
        printf("%s{domain=\"", f->name);
        print_label_value(domain);
        putchar('"');
        if (label) {
                printf(",%s=\"", label);
                print_label_value(label_value);
                putchar('"');
        }
        fputs("} ", stdout);
        if (json_is_boolean(v))
                printf("%d\n", json_is_true(v));
        else if (f->scale != 0)
                printf("%.9g\n", json_number_value(v) * f->scale);
        else if (json_is_integer(v))
                printf("%" PRId64 "\n", (int64_t) json_integer_value(v));
        else
                printf("%.17g\n", json_number_value(v));
}

static void print_family(const Family *f, VmStats *vms, size_t n_vms) {
        if (arg.openmetrics) {
                /* A counter's family is named without the _total its samples carry. */
                int len = (int) strlen(f->name);

                if (streq(f->type, "counter") && len > 6 && streq(f->name + len - 6, "_total"))
                        len -= 6;
                printf("# TYPE %.*s %s\n", len, f->name, f->type);
                if (f->unit)
                        printf("# UNIT %.*s %s\n", len, f->name, f->unit);
                printf("# HELP %.*s %s.\n", len, f->name, f->help);
        } else
                printf("# HELP %s %s.\n# TYPE %s %s\n", f->name, f->help, f->name, f->type);
        for (size_t i = 0; i < n_vms; i++) {
                json_t *st = vms[i].stats, *v;
                char key[96];

                switch (f->kind) {
                case FAMILY_STATE: {
                        json_t *s = json_object_get(st, "state.state");
                        json_auto_t *code = NULL;

                        if (!json_is_string(s))
                                break;
                        code = json_integer(libvirt_state(json_string_value(s)));
                        if (code)
                                print_sample(f, vms[i].name, "state", json_string_value(s), code);
                        break;
                }
                case FAMILY_VM:
                        v = json_object_get(st, f->key);
                        if (json_is_number(v) || json_is_boolean(v))
                                print_sample(f, vms[i].name, NULL, NULL, v);
                        break;
                case FAMILY_VCPU: {
                        const char *k;

                        json_object_foreach(st, k, v) {
                                unsigned idx;
                                int end = 0;
                                char num[16];

                                if (sscanf(k, "vcpu.%u.%n", &idx, &end) != 1 || end == 0 || !streq(k + end, f->key) ||
                                    !json_is_number(v))
                                        continue;
                                snprintf(num, sizeof num, "%u", idx);
                                print_sample(f, vms[i].name, "vcpu", num, v);
                        }
                        break;
                }
                case FAMILY_BLOCK: {
                        json_t *count = json_object_get(st, "block.count"), *name;

                        for (json_int_t b = 0; json_is_integer(count) && b < json_integer_value(count); b++) {
                                snprintf(key, sizeof key, "block.%" JSON_INTEGER_FORMAT ".name", b);
                                name = json_object_get(st, key);
                                snprintf(key, sizeof key, "block.%" JSON_INTEGER_FORMAT ".%s", b, f->key);
                                v = json_object_get(st, key);
                                if (json_is_string(name) && json_is_number(v))
                                        print_sample(f, vms[i].name, "target_device", json_string_value(name), v);
                        }
                        break;
                }
                }
        }
}

static int cmp_name(const void *a, const void *b) {
        return strcmp(*(char * const *) a, *(char * const *) b);
}

/* Every VM on the bus: the names org.vmsup.VM.* are the registry. */
static int list_vms(sd_bus *bus, char ***ret) {
        _cleanup_strv_free_ char **names = NULL, **vms = NULL;
        int r;

        r = sd_bus_list_names(bus, &names, NULL);
        if (r < 0)
                return r;
        for (char **s = names; s && *s; s++)
                if (startswith(*s, VM_BUS_PREFIX) && vm_name_is_valid(*s + strlen(VM_BUS_PREFIX)) &&
                    strv_extend(&vms, *s + strlen(VM_BUS_PREFIX)) < 0)
                        return -ENOMEM;
        if (vms)
                qsort(vms, strv_length(vms), sizeof(char *), cmp_name);
        *ret = TAKE_PTR(vms);
        return 0;
}

/* metrics [NAME...]: without names, every VM on the bus the caller may read (the
 * others are skipped, each with a line on stderr). */
int verb_metrics(char **args, size_t n) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_strv_free_ char **all = NULL;
        _cleanup_free_ VmStats *vms = NULL;
        char **names = args;
        size_t n_vms = 0, n_names = n;
        int r, status = 0;

        r = ctl_bus_open(&bus);
        if (r < 0)
                return -r;
        if (n == 0) {
                r = list_vms(bus, &all);
                if (r < 0)
                        return ctl_bus_fail(r, "cannot list the bus names");
                names = all;
                n_names = strv_length(all);
        }
        for (size_t i = 0; i < n; i++)
                if (!vm_name_is_valid(args[i])) {
                        fprintf(stderr, "vmsupctl: invalid VM name \"%.80s\"\n", args[i]);
                        return CTL_EXIT_USAGE;
                }
        vms = calloc(n_names ?: 1, sizeof *vms);
        if (!vms)
                return ctl_bus_fail(-ENOMEM, "metrics");
        for (size_t i = 0; i < n_names; i++) {
                json_t *st = NULL;

                r = get_stats(bus, names[i], NULL, &st);
                if (r > 0) {
                        if (n > 0 && status == 0)
                                status = r;
                        continue;
                }
                vms[n_vms++] = (VmStats) { .name = names[i], .stats = st };
        }
        for (size_t f = 0; f < ELEMENTSOF(families); f++)
                print_family(&families[f], vms, n_vms);
        if (arg.openmetrics)
                fputs("# EOF\n", stdout);
        for (size_t i = 0; i < n_vms; i++)
                json_decref(vms[i].stats);
        if (fflush(stdout) != 0)
                return ctl_bus_fail(-errno, "metrics");
        return status;
}

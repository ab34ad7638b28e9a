/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* VM1.GetStats: statistics in libvirt's virConnectGetAllDomainStats vocabulary.
 * QEMU's answers (query-cpus-fast, query-blockstats, query-balloon) are asked for
 * together and the call is answered when the last one came; the vCPU threads' CPU
 * time comes from procfs (/proc/PID/task/TID/stat: no disk, no waiting). Missing
 * data (no balloon device, a failed query) is left out rather than failing the call. */

#include <fcntl.h>

#include "bus-errors.h"
#include "vm-stats.h"

static const char * const group_names[_STATS_GROUP_MAX] = {
        [STATS_GROUP_STATE] = "state",
        [STATS_GROUP_CPU_TOTAL] = "cpu-total",
        [STATS_GROUP_VCPU] = "vcpu",
        [STATS_GROUP_BALLOON] = "balloon",
        [STATS_GROUP_BLOCK] = "block",
        [STATS_GROUP_AGENT] = "agent",
};

int stats_group_from_string(const char *s) {
        for (int i = 0; i < _STATS_GROUP_MAX; i++)
                if (streq(s, group_names[i]))
                        return i;
        return -EINVAL;
}

const char *stats_group_to_string(int g) {
        return g >= 0 && g < _STATS_GROUP_MAX ? group_names[g] : NULL;
}

typedef struct StatsCall {
        VmBus *b;
        sd_bus_message *m;
        unsigned groups;
        unsigned pending;
        json_t *cpus, *blocks, *balloon;
} StatsCall;

static StatsCall *stats_call_free(StatsCall *c) {
        if (!c)
                return NULL;
        sd_bus_message_unref(c->m);
        json_decref(c->cpus);
        json_decref(c->blocks);
        json_decref(c->balloon);
        free(c);
        return NULL;
}

/* utime and stime (clock ticks) and rss (pages) of /proc/PID/stat or /proc/PID/task/TID/stat. */
static int read_proc_stat(const char *path, uint64_t *ret_utime, uint64_t *ret_stime, uint64_t *ret_rss) {
        _cleanup_close_ int fd = -EBADF;
        unsigned long long ut = 0, st = 0, rss = 0;
        char buf[1024], *p;
        ssize_t n;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
        if (fd < 0)
                return -errno;
        n = read(fd, buf, sizeof buf - 1);
        if (n < 0)
                return -errno;
        buf[n] = '\0';
        /* The thread name may contain anything; the fields follow the last ')'. */
        p = strrchr(buf, ')');
        if (!p || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d %*u %*u %llu",
                         &ut, &st, &rss) != 3)
                return -EIO;
        *ret_utime = ut;
        *ret_stime = st;
        if (ret_rss)
                *ret_rss = rss;
        return 0;
}

static uint64_t ticks_to_nsec(uint64_t ticks) {
        long hz = sysconf(_SC_CLK_TCK);
        return ticks * (UINT64_C(1000000000) / (uint64_t) (hz > 0 ? hz : 100));
}

/* A non-negative integer member of QEMU's answer, else 0. */
static uint64_t json_u64(json_t *o, const char *key) {
        json_t *v = json_object_get(o, key);
        return json_is_integer(v) && json_integer_value(v) >= 0 ? (uint64_t) json_integer_value(v) : 0;
}

#define APPEND(type, value)                                                                  \
        do {                                                                                 \
                r = sd_bus_message_append(reply, "{sv}", key, type, value);                  \
                if (r < 0)                                                                   \
                        return r;                                                            \
        } while (0)
#define KEY(...) (void) snprintf(key, sizeof key, __VA_ARGS__)

static int append_vcpus(StatsCall *c, sd_bus_message *reply) {
        Vm *vm = c->b->vm;
        char key[64];
        uint32_t current = 0;
        size_t i;
        json_t *cpu;
        int r;

        KEY("vcpu.maximum");
        APPEND("u", (uint32_t) vm->config->cpus);
        if (!json_is_array(c->cpus) || !vm_is_active(vm)) {
                KEY("vcpu.current");
                APPEND("u", (uint32_t) 0);
                return 0;
        }
        json_array_foreach(c->cpus, i, cpu) {
                json_t *idx = json_object_get(cpu, "cpu-index"), *tid = json_object_get(cpu, "thread-id");
                uint64_t ut, st;
                char path[96];

                if (i >= STATS_VCPU_MAX)
                        break;
                if (!json_is_integer(idx) || json_integer_value(idx) < 0 || json_integer_value(idx) >= STATS_VCPU_MAX ||
                    !json_is_integer(tid) || json_integer_value(tid) <= 0 || json_integer_value(tid) > INT32_MAX)
                        continue;
                current++;
                /* Under QEMU's own /proc entry: only QEMU's threads can be read. */
                (void) snprintf(path, sizeof path, "/proc/%d/task/%d/stat", (int) vm->pid,
                                (int) json_integer_value(tid));
                if (read_proc_stat(path, &ut, &st, NULL) < 0)
                        continue;
                KEY("vcpu.%d.time", (int) json_integer_value(idx));
                APPEND("t", ticks_to_nsec(ut + st));
                KEY("vcpu.%d.state", (int) json_integer_value(idx));
                APPEND("i", (int32_t) 1); /* VIR_VCPU_RUNNING: the thread exists */
        }
        KEY("vcpu.current");
        APPEND("u", current);
        return 0;
}

static int append_blocks(StatsCall *c, sd_bus_message *reply) {
        char key[64];
        uint32_t n = 0;
        size_t i;
        json_t *dev;
        int r;

        if (json_is_array(c->blocks))
                json_array_foreach(c->blocks, i, dev) {
                        static const char * const name_keys[] = { "device", "qdev", "node-name" };
                        json_t *stats = json_object_get(dev, "stats");
                        const char *name = NULL;
                        char safe[STATS_NAME_MAX + 1];

                        if (n >= STATS_BLOCK_MAX)
                                break;
                        if (!json_is_object(stats))
                                continue;
                        for (size_t k = 0; k < ELEMENTSOF(name_keys) && !name; k++) {
                                json_t *v = json_object_get(dev, name_keys[k]);
                                if (json_is_string(v) && json_string_length(v) > 0)
                                        name = json_string_value(v);
                        }
                        text_sanitize(safe, sizeof safe, name ?: "", name ? strlen(name) : 0, 0);
                        KEY("block.%u.name", n);
                        APPEND("s", safe);
                        KEY("block.%u.rd.reqs", n);
                        APPEND("t", json_u64(stats, "rd_operations"));
                        KEY("block.%u.rd.bytes", n);
                        APPEND("t", json_u64(stats, "rd_bytes"));
                        KEY("block.%u.wr.reqs", n);
                        APPEND("t", json_u64(stats, "wr_operations"));
                        KEY("block.%u.wr.bytes", n);
                        APPEND("t", json_u64(stats, "wr_bytes"));
                        KEY("block.%u.fl.reqs", n);
                        APPEND("t", json_u64(stats, "flush_operations"));
                        n++;
                }
        KEY("block.count");
        APPEND("u", n);
        return 0;
}

static int append_stats(StatsCall *c, sd_bus_message *reply) {
        Vm *vm = c->b->vm;
        bool active = vm_is_active(vm);
        uint64_t ut = 0, st = 0, rss = 0;
        char key[64];
        int r;

        if (active) {
                char path[64];
                (void) snprintf(path, sizeof path, "/proc/%d/stat", (int) vm->pid);
                (void) read_proc_stat(path, &ut, &st, &rss);
        }
        if (c->groups & STATS_GROUP_BIT(STATS_GROUP_STATE)) {
                KEY("state.state");
                APPEND("s", vm_state_to_string(vm->state));
                KEY("state.reason");
                APPEND("s", vm->state_reason ?: "");
        }
        if (c->groups & STATS_GROUP_BIT(STATS_GROUP_CPU_TOTAL)) {
                KEY("cpu.time");
                APPEND("t", ticks_to_nsec(ut + st));
                KEY("cpu.user");
                APPEND("t", ticks_to_nsec(ut));
                KEY("cpu.system");
                APPEND("t", ticks_to_nsec(st));
        }
        if (c->groups & STATS_GROUP_BIT(STATS_GROUP_VCPU)) {
                r = append_vcpus(c, reply);
                if (r < 0)
                        return r;
        }
        if (c->groups & STATS_GROUP_BIT(STATS_GROUP_BALLOON)) {
                long page = sysconf(_SC_PAGESIZE);

                KEY("balloon.maximum");
                APPEND("t", vm->config->memory_mib * 1024);
                if (json_is_object(c->balloon) && json_u64(c->balloon, "actual") > 0) {
                        KEY("balloon.current");
                        APPEND("t", json_u64(c->balloon, "actual") / 1024);
                } else if (active) {
                        KEY("balloon.current");
                        APPEND("t", vm->config->memory_mib * 1024); /* no balloon: all of it */
                }
                KEY("balloon.rss");
                APPEND("t", rss * (uint64_t) (page > 0 ? page : 4096) / 1024);
        }
        if (c->groups & STATS_GROUP_BIT(STATS_GROUP_BLOCK)) {
                r = append_blocks(c, reply);
                if (r < 0)
                        return r;
        }
        if (c->groups & STATS_GROUP_BIT(STATS_GROUP_AGENT)) {
                QgaStats q;

                qga_client_get_stats(vm->qga, &q);
                KEY("agent.connected");
                APPEND("b", (int) vm->agent_connected);
                KEY("agent.syncs");
                APPEND("t", q.syncs);
                KEY("agent.sync-timeouts");
                APPEND("t", q.sync_timeouts);
                KEY("agent.timeouts");
                APPEND("t", q.command_timeouts);
                KEY("agent.protocol-errors");
                APPEND("t", q.protocol_errors);
                KEY("agent.dropped-lines");
                APPEND("t", q.dropped_lines);
                KEY("agent.answered");
                APPEND("t", q.answered);
                KEY("agent.answer-time");
                APPEND("t", q.answer_usec);
        }
        return 0;
}

#undef APPEND
#undef KEY

static void stats_reply(StatsCall *c) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *reply = NULL;
        int r;

        r = sd_bus_message_new_method_return(c->m, &reply);
        if (r >= 0)
                r = sd_bus_message_open_container(reply, 'a', "{sv}");
        if (r >= 0)
                r = append_stats(c, reply);
        if (r >= 0)
                r = sd_bus_message_close_container(reply);
        if (r >= 0)
                r = sd_bus_send(NULL, reply, NULL);
        if (r < 0)
                (void) sd_bus_reply_method_errnof(c->m, r, "Cannot build the statistics: %m");
        stats_call_free(c);
}

static void stats_step(StatsCall *c) {
        if (--c->pending == 0)
                stats_reply(c);
}

static void on_cpus(QmpClient *q, int error, json_t *result, const char *ec, const char *ed, void *userdata) {
        StatsCall *c = userdata;
        if (error >= 0)
                c->cpus = json_incref(result);
        stats_step(c);
}

static void on_blocks(QmpClient *q, int error, json_t *result, const char *ec, const char *ed, void *userdata) {
        StatsCall *c = userdata;
        if (error >= 0)
                c->blocks = json_incref(result);
        stats_step(c);
}

static void on_balloon(QmpClient *q, int error, json_t *result, const char *ec, const char *ed, void *userdata) {
        StatsCall *c = userdata;
        if (error >= 0)
                c->balloon = json_incref(result);
        stats_step(c);
}

int vm_stats_get(VmBus *b, sd_bus_message *m, unsigned groups) {
        static const struct {
                int group;
                const char *execute;
                qmp_reply_cb_t cb;
        } queries[] = {
                { STATS_GROUP_VCPU, "query-cpus-fast", on_cpus },
                { STATS_GROUP_BLOCK, "query-blockstats", on_blocks },
                { STATS_GROUP_BALLOON, "query-balloon", on_balloon },
        };
        StatsCall *c;

        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (StatsCall) { .b = b, .m = sd_bus_message_ref(m), .groups = groups, .pending = 1 };
        if (vm_is_running(b->vm))
                for (size_t i = 0; i < ELEMENTSOF(queries); i++)
                        if ((groups & STATS_GROUP_BIT(queries[i].group)) &&
                            qmp_send(b->vm->qmp, queries[i].execute, NULL, 0, queries[i].cb, c, NULL) >= 0)
                                c->pending++;
        /* The answers come from the loop, never from within qmp_send(): this drops our own count. */
        stats_step(c);
        return 1;
}

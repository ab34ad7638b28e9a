/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include "bus-util.h"

/* VM1.GetStats groups, named as libvirt's virConnectGetAllDomainStats names them where
 * one fits. */
typedef enum StatsGroup {
        STATS_GROUP_STATE,     /* state.state, state.reason */
        STATS_GROUP_CPU_TOTAL, /* cpu.time, cpu.user, cpu.system: QEMU's process, ns */
        STATS_GROUP_VCPU,      /* vcpu.current, vcpu.maximum, vcpu.N.time (ns), vcpu.N.state */
        STATS_GROUP_BALLOON,   /* balloon.current, balloon.maximum, balloon.rss (KiB) */
        STATS_GROUP_BLOCK,     /* block.count, block.N.name, block.N.{rd,wr}.{reqs,bytes}, block.N.fl.reqs */
        STATS_GROUP_AGENT,     /* agent.connected, agent.syncs, agent.sync-timeouts, agent.timeouts,
                                * agent.protocol-errors, agent.dropped-lines, agent.answered,
                                * agent.answer-time */
        _STATS_GROUP_MAX,
} StatsGroup;

#define STATS_GROUP_BIT(g) (1U << (g))
#define STATS_GROUP_ALL ((1U << _STATS_GROUP_MAX) - 1)
/* A groups argument with more entries than this is InvalidArgs. */
#define STATS_GROUPS_MAX 16U
/* QEMU's answers are bounded before they become bus keys. */
#define STATS_VCPU_MAX 1024
#define STATS_BLOCK_MAX 256U
#define STATS_NAME_MAX 128

/* Returns the group, or -EINVAL. */
int stats_group_from_string(const char *s);
const char *stats_group_to_string(int g);

/* Answers m (authorized already) with the groups' statistics, now or once QEMU
 * answered. Returns 1, or -ENOMEM (nothing sent). */
int vm_stats_get(VmBus *b, sd_bus_message *m, unsigned groups);

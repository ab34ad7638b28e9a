/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A guest agent that misbehaves on purpose, to test the host's agent client.
 *
 *   hostile-agent MODE PORT
 *
 * PORT is the guest's virtio-serial port (/dev/vportNpM).  MODE:
 *   flood      endless garbage lines and well-formed replies with random
 *              values, as fast as the port takes them; never a real answer
 *   silent     reads and discards everything, never writes
 *   hugeline   answers every request with one 80 MiB line ("AAA...A\n")
 *   stale      answers guest-sync-delimited with 0xFF and a reply carrying
 *              another id, everything else with {"return": 12345}, and
 *              sprinkles stray 0xFF bytes between and inside replies
 *   recover[:N] floods for N seconds (default 20), then execs the real
 *              /usr/sbin/qemu-ga on the same port
 *   liar[:D]   keeps the protocol's framing and lies in the replies: answers
 *              every guest-sync-delimited correctly (0xFF, then
 *              {"return": ID} with the request's id, as qemu-ga does), and
 *              every other command, keyed on its name, with:
 *                guest-info           two replies; the second one carries
 *                                     "dup": true and comes at once on odd
 *                                     calls, 300 ms later on even ones
 *                guest-get-host-name  the reply, then an unsolicited
 *                                     {"return": {"echo": "FORGED", ...}}
 *                                     (at once / 300 ms later, alternating)
 *                guest-get-time       the reply after D seconds (default 12,
 *                                     beyond the host's 10 s timeout)
 *                guest-get-users      a 70 MiB reply line (valid JSON)
 *                guest-get-timezone   an error whose class impersonates a
 *                                     D-Bus error and whose desc holds
 *                                     control characters, non-ASCII and
 *                                     1000 bytes of padding
 *                guest-get-vcpus      broken JSON, one of five forms in turn
 *                                     (unclosed, trailing data, duplicate
 *                                     key, raw control byte, invalid UTF-8)
 *                guest-file-open      {"return": 1000} (a handle)
 *                guest-file-read      a 70 MiB guest-file-read reply line
 *                guest-file-close     {"return": {}}
 *                anything else        an honest reply
 *              Every reply names the request it answers, as
 *              {"return": {"echo": "<execute>", "seq": K}} (errors and
 *              broken lines carry "echo=<execute> seq=K" in their text),
 *              K counting the commands received.  Requests are served one at
 *              a time, as qemu-ga does: nothing more is read while a reply is
 *              still being written or waited for, so every misbehaviour
 *              happens before the answer to the host's next sync.
 *
 * A "request" is one top-level JSON object, found by counting braces outside
 * strings; a 0xFF byte resets that count as it resets qemu-ga's parser.
 *
 * The port misbehaves too: while the host end is not connected, poll()
 * reports POLLHUP, read() returns 0 and a blocking write() waits.  Nothing
 * here is fatal after the port is open: every error is retried after a
 * short sleep.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define HUGE_LINE_BYTES   (80u * 1024 * 1024)
#define OUT_MAX           (64 * 1024)
#define REQ_MAX           4096
#define RECOVER_DEFAULT_S 20
/* liar: longer than the host's longest accepted line (48 MiB * 4/3 + 64 KiB). */
#define LIAR_HUGE_BYTES   (70u * 1024 * 1024)
#define LIAR_DELAY_DEFAULT_S 12
#define LIAR_LATER_MS     300

enum mode { MODE_FLOOD, MODE_SILENT, MODE_HUGELINE, MODE_STALE, MODE_RECOVER, MODE_LIAR };

static enum mode mode;
static const char *port;
static time_t recover_at;
static long liar_delay_s = LIAR_DELAY_DEFAULT_S;

/* Pending output: out[out_pos..out_len), then huge_left bytes of 'A' and
 * huge_tail, then (hugeline) huge_pending more lines of HUGE_LINE_BYTES. */
static char out[OUT_MAX];
static size_t out_len, out_pos;
static uint64_t huge_left;
static const char *huge_tail;
static size_t huge_tail_len, huge_tail_pos;
static unsigned huge_pending;
static char huge_chunk[OUT_MAX];

/* liar: output due at later_at (CLOCK_MONOTONIC ms), written after out[]. */
static char later[1024];
static size_t later_len;
static long long later_at;
static unsigned long long liar_seq;
static unsigned liar_info_calls, liar_host_calls, liar_vcpus_calls;

/* Input read from the port and not yet fed to the request parser. */
static unsigned char backlog[65536];
static size_t backlog_len, backlog_pos;

/* Request tracking. */
static int depth, in_string, escaped;
static char req[REQ_MAX];
static size_t req_len;
static long long last_sync_id = -1;
static unsigned reply_count;

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void) {
        /* xorshift64: cheap, and good enough for noise. */
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        return rng_state;
}

static void pause_briefly(void) {
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
}

/* Append to the pending output, dropping what does not fit: a hostile agent
 * may lose its own replies, and the host must not care. */
static void emit(const char *s, size_t n) {
        if (n > sizeof(out) - out_len)
                n = sizeof(out) - out_len;
        memcpy(out + out_len, s, n);
        out_len += n;
}

#define EMIT_LITERAL(s) emit((s), sizeof(s) - 1)

__attribute__((format(printf, 1, 2)))
static void emitf(const char *fmt, ...) {
        char buf[2048];
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(buf, sizeof(buf), fmt, ap);
        va_end(ap);
        if (n > 0)
                emit(buf, (size_t) n < sizeof(buf) ? (size_t) n : sizeof(buf) - 1);
}

static void flood_fill(void) {
        static const char *const lines[] = {
                "garbage garbage garbage\n",
                "{\"return\": {}, \"extra\": [1, 2, {\"x\": \"y\"}]}\n",
                "{\"error\": {\"class\": \"GenericError\", \"desc\": \"flood\"}}\n",
                "}}}]]]{{{[[[\n",
                "{\"return\n",
                "\"\\u0000\\ud800\"\n",
                "{\"return\": \"\x01\x02\x7f\xc3\x28\"}\n",
                "\n",
        };
        while (out_len < sizeof(out) - 256) {
                uint64_t r = rnd();
                switch (r % 4) {
                case 0:
                        emitf("{\"return\": %lld}\n", (long long) (rnd() >> 1));
                        break;
                case 1:
                        emitf("{\"return\": {\"id\": %lld}}\n", (long long) (rnd() >> 1));
                        break;
                default: {
                        const char *l = lines[(r >> 8) % (sizeof(lines) / sizeof(lines[0]))];
                        emit(l, strlen(l));
                        break;
                }
                }
        }
}

/* Pulls the number after "id": out of a request, or -1. */
static long long request_id(void) {
        const char *p = strstr(req, "\"id\"");
        if (!p)
                return -1;
        p += 4;
        while (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
        return strtoll(p, NULL, 10);
}

static long long now_ms(void) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (long long) ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int huge_busy(void) {
        return huge_left > 0 || huge_tail_pos < huge_tail_len;
}

/* After out[]: fill bytes of 'A', then tail (a literal). */
static void huge_start(uint64_t fill, const char *tail) {
        huge_left = fill;
        huge_tail = tail;
        huge_tail_len = strlen(tail);
        huge_tail_pos = 0;
}

/* The request's "execute" value, reduced to [A-Za-z0-9_-] (it is echoed into
 * JSON), or "" when there is none. */
static void request_execute(char *name, size_t size) {
        const char *p = strstr(req, "\"execute\"");
        size_t n = 0;

        name[0] = 0;
        if (!p)
                return;
        p += 9;
        while (*p == ' ' || *p == ':' || *p == '\t' || *p == '\n' || *p == '\r')
                p++;
        if (*p++ != '"')
                return;
        while (*p && *p != '"' && n + 1 < size) {
                char ch = *p++;
                int plain = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                            (ch >= '0' && ch <= '9') || ch == '-' || ch == '_';
                name[n++] = plain ? ch : '_';
        }
        name[n] = 0;
}

__attribute__((format(printf, 2, 3)))
static void later_f(long long delay_ms, const char *fmt, ...) {
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vsnprintf(later, sizeof(later), fmt, ap);
        va_end(ap);
        later_len = n > 0 ? ((size_t) n < sizeof(later) ? (size_t) n : sizeof(later) - 1) : 0;
        later_at = now_ms() + delay_ms;
}

static void liar_answer(void) {
        static const char tail_echo[] = "\"}}\n";
        static const char tail_read[] = "\", \"eof\": false}}\n";
        char name[64];
        unsigned long long k;

        request_execute(name, sizeof(name));
        if (strcmp(name, "guest-sync-delimited") == 0 || strcmp(name, "guest-sync") == 0) {
                if (name[10] == '-')
                        EMIT_LITERAL("\xff");
                emitf("{\"return\": %lld}\n", request_id());
                return;
        }
        k = ++liar_seq;
        if (strcmp(name, "guest-info") == 0) {
                /* The second reply must be dropped, never handed to the next caller. */
                unsigned odd = ++liar_info_calls % 2;
                emitf("{\"return\": {\"echo\": \"%s\", \"seq\": %llu}}\n", name, k);
                if (odd)
                        emitf("{\"return\": {\"echo\": \"%s\", \"seq\": %llu, \"dup\": true}}\n", name, k);
                else
                        later_f(LIAR_LATER_MS, "{\"return\": {\"echo\": \"%s\", \"seq\": %llu, \"dup\": true}}\n",
                                name, k);
        } else if (strcmp(name, "guest-get-host-name") == 0) {
                /* Unsolicited while the host is idle: it must not answer a later command. */
                unsigned odd = ++liar_host_calls % 2;
                emitf("{\"return\": {\"echo\": \"%s\", \"seq\": %llu}}\n", name, k);
                if (odd)
                        emitf("{\"return\": {\"echo\": \"FORGED\", \"seq\": %llu}}\n", k);
                else
                        later_f(LIAR_LATER_MS, "{\"return\": {\"echo\": \"FORGED\", \"seq\": %llu}}\n", k);
        } else if (strcmp(name, "guest-get-time") == 0) {
                /* Past the host's timeout: the late reply must reach nobody. */
                later_f(liar_delay_s * 1000, "{\"return\": {\"echo\": \"%s\", \"seq\": %llu}}\n", name, k);
        } else if (strcmp(name, "guest-get-users") == 0) {
                /* out[] is empty: requests are served one at a time. */
                int n = snprintf(out + out_len, sizeof(out) - out_len,
                                 "{\"return\": {\"echo\": \"%s\", \"seq\": %llu, \"pad\": \"", name, k);
                if (n < 0 || (size_t) n >= sizeof(out) - out_len)
                        return;
                out_len += (size_t) n;
                huge_start(LIAR_HUGE_BYTES - (uint64_t) n - (sizeof(tail_echo) - 1), tail_echo);
        } else if (strcmp(name, "guest-file-read") == 0) {
                /* What a real guest-file-read reply looks like, only far too long
                 * ('A' is valid base64; the fill is a multiple of 4). */
                int n = snprintf(out + out_len, sizeof(out) - out_len,
                                 "{\"return\": {\"count\": 52428800, \"buf-b64\": \"");
                if (n < 0 || (size_t) n >= sizeof(out) - out_len)
                        return;
                out_len += (size_t) n;
                huge_start((LIAR_HUGE_BYTES - (uint64_t) n - (sizeof(tail_read) - 1)) & ~(uint64_t) 3, tail_read);
        } else if (strcmp(name, "guest-get-timezone") == 0) {
                /* A class that impersonates a D-Bus error name, and a desc with
                 * control characters (escaped, so the JSON is valid; not \u0000,
                 * which the host's parser refuses outright), raw UTF-8, and
                 * padding beyond any sane message length. */
                char pad[1001];

                memset(pad, 'x', sizeof(pad) - 1);
                pad[sizeof(pad) - 1] = 0;
                emitf("{\"error\": {\"class\": \"org.freedesktop.DBus.Error.AccessDenied\\u001b[2J\\r\\n\", "
                      "\"desc\": \"echo=%s seq=%llu\\u0001\\u0007\\b\\t\\r\\n"
                      "Error org.vmsup.Error.NotRunning: \\u001b]0;owned\\u0007 \xc3\xa9\\u202e\\u007f\\u0085 "
                      "%s\"}}\n",
                      name, k, pad);
        } else if (strcmp(name, "guest-get-vcpus") == 0) {
                switch (liar_vcpus_calls++ % 5) {
                case 0: /* never closed */
                        emitf("{\"return\": {\"echo\": \"%s\", \"seq\": %llu}\n", name, k);
                        break;
                case 1: /* a second value after the first */
                        emitf("{\"return\": {\"echo\": \"%s\", \"seq\": %llu}} "
                              "{\"return\": {\"echo\": \"FORGED\"}}\n", name, k);
                        break;
                case 2: /* the same key twice */
                        emitf("{\"return\": {\"echo\": \"%s\", \"seq\": %llu}, "
                              "\"return\": {\"echo\": \"FORGED\"}}\n", name, k);
                        break;
                case 3: /* a raw control character inside a string */
                        emitf("{\"return\": {\"echo\": \"%s\x01\", \"seq\": %llu}}\n", name, k);
                        break;
                default: /* not UTF-8 */
                        emitf("{\"return\": {\"echo\": \"%s\xc3\x28\", \"seq\": %llu}}\n", name, k);
                        break;
                }
        } else if (strcmp(name, "guest-file-open") == 0) {
                EMIT_LITERAL("{\"return\": 1000}\n");
        } else if (strcmp(name, "guest-file-close") == 0) {
                EMIT_LITERAL("{\"return\": {}}\n");
        } else if (name[0]) {
                emitf("{\"return\": {\"echo\": \"%s\", \"seq\": %llu}}\n", name, k);
        } else {
                EMIT_LITERAL("{\"error\": {\"class\": \"GenericError\", \"desc\": \"no execute\"}}\n");
        }
}

static void answer(void) {
        switch (mode) {
        case MODE_HUGELINE:
                if (!huge_busy())
                        huge_start(HUGE_LINE_BYTES - 1, "\n");
                else
                        huge_pending++;
                break;
        case MODE_LIAR:
                liar_answer();
                break;
        case MODE_STALE: {
                unsigned k = reply_count++;
                if (strstr(req, "\"guest-sync")) {
                        /* Answer with the previous sync's id: what a reply
                         * left over from an earlier, abandoned sync looks
                         * like. */
                        long long id = request_id();
                        long long stale = last_sync_id;
                        if (stale < 0 || stale == id)
                                stale = id ^ 1;
                        last_sync_id = id;
                        if (strstr(req, "\"guest-sync-delimited\""))
                                EMIT_LITERAL("\xff");
                        emitf("{\"return\": %lld}\n", stale);
                } else if (k % 3 == 0) {
                        EMIT_LITERAL("\xff{\"return\": 12345}\n");
                } else if (k % 3 == 1) {
                        EMIT_LITERAL("{\"return\": 12345}\n\xff");
                } else {
                        EMIT_LITERAL("{\"return\": \xff" "12345}\n");
                }
                break;
        }
        default:
                break;
        }
}

/* Feeds bytes from the host through the brace counter, answering each
 * complete top-level object.  Returns how many bytes it took: liar stops
 * after each request, to serve the next one once this one is answered. */
static size_t consume(const unsigned char *buf, size_t n) {
        for (size_t i = 0; i < n; i++) {
                unsigned char c = buf[i];

                if (c == 0xff) {
                        depth = in_string = escaped = 0;
                        req_len = 0;
                        continue;
                }
                if (depth > 0 && req_len < sizeof(req) - 1) {
                        req[req_len++] = (char) c;
                        req[req_len] = 0;
                }
                if (in_string) {
                        if (escaped)
                                escaped = 0;
                        else if (c == '\\')
                                escaped = 1;
                        else if (c == '"')
                                in_string = 0;
                        continue;
                }
                if (c == '"' && depth > 0) {
                        in_string = 1;
                } else if (c == '{' || c == '[') {
                        if (depth++ == 0) {
                                req[0] = (char) c;
                                req[1] = 0;
                                req_len = 1;
                        }
                } else if ((c == '}' || c == ']') && depth > 0) {
                        if (--depth == 0) {
                                answer();
                                req_len = 0;
                                if (mode == MODE_LIAR)
                                        return i + 1;
                        }
                }
        }
        return n;
}

static int have_output(void) {
        return out_pos < out_len || huge_busy();
}

/* liar: still answering the last request (serving requests one at a time). */
static int busy(void) {
        return mode == MODE_LIAR && (have_output() || later_len > 0);
}

/* Writes some pending output.  Returns the write() result. */
static ssize_t push(int fd) {
        ssize_t n;

        if (out_pos < out_len) {
                n = write(fd, out + out_pos, out_len - out_pos);
                if (n > 0)
                        out_pos += (size_t) n;
                if (out_pos == out_len)
                        out_pos = out_len = 0;
                return n;
        }
        if (huge_left > 0) {
                size_t want = huge_left < sizeof(huge_chunk) ? huge_left : sizeof(huge_chunk);
                n = write(fd, huge_chunk, want);
                if (n > 0)
                        huge_left -= (uint64_t) n;
                return n;
        }
        n = write(fd, huge_tail + huge_tail_pos, huge_tail_len - huge_tail_pos);
        if (n > 0) {
                huge_tail_pos += (size_t) n;
                if (huge_tail_pos == huge_tail_len) {
                        huge_tail_pos = huge_tail_len = 0;
                        if (huge_pending > 0) {
                                huge_pending--;
                                huge_start(HUGE_LINE_BYTES - 1, "\n");
                        }
                }
        }
        return n;
}

static void become_real_agent(int fd) {
        /* The port admits one opener at a time: close it before qemu-ga
         * opens it. */
        close(fd);
        fprintf(stderr, "hostile-agent: recovering, starting qemu-ga\n");
        execl("/usr/sbin/qemu-ga", "qemu-ga", "-m", "virtio-serial", "-p", port,
              "-t", "/run", "-f", "/run/qemu-ga.pid", (char *) NULL);
        perror("hostile-agent: exec qemu-ga");
        _exit(1);
}

static int parse_mode(const char *s) {
        if (strcmp(s, "flood") == 0)
                mode = MODE_FLOOD;
        else if (strcmp(s, "silent") == 0)
                mode = MODE_SILENT;
        else if (strcmp(s, "hugeline") == 0)
                mode = MODE_HUGELINE;
        else if (strcmp(s, "stale") == 0)
                mode = MODE_STALE;
        else if (strncmp(s, "recover", 7) == 0 && (s[7] == 0 || s[7] == ':')) {
                long secs = s[7] == ':' ? strtol(s + 8, NULL, 10) : RECOVER_DEFAULT_S;
                if (secs < 0)
                        secs = 0;
                mode = MODE_RECOVER;
                recover_at = time(NULL) + secs;
        } else if (strncmp(s, "liar", 4) == 0 && (s[4] == 0 || s[4] == ':')) {
                mode = MODE_LIAR;
                if (s[4] == ':')
                        liar_delay_s = strtol(s + 5, NULL, 10);
                if (liar_delay_s < 0)
                        liar_delay_s = 0;
        } else
                return -1;
        return 0;
}

int main(int argc, char **argv) {
        int fd;

        if (argc != 3 || parse_mode(argv[1]) < 0) {
                fprintf(stderr, "usage: %s flood|silent|hugeline|stale|recover[:SECONDS]|liar[:SECONDS] PORT\n", argv[0]);
                return 2;
        }
        port = argv[2];
        rng_state ^= (uint64_t) time(NULL) ^ ((uint64_t) getpid() << 32);
        memset(huge_chunk, 'A', sizeof(huge_chunk));

        for (;;) {
                fd = open(port, O_RDWR | O_NONBLOCK | O_CLOEXEC);
                if (fd >= 0)
                        break;
                perror("hostile-agent: open port, retrying");
                sleep(1);
        }

        for (;;) {
                struct pollfd p = { .fd = fd, .events = 0 };
                int timeout_ms = 1000;
                ssize_t n;

                if (mode == MODE_RECOVER && time(NULL) >= recover_at)
                        become_real_agent(fd);
                if ((mode == MODE_FLOOD || mode == MODE_RECOVER) && !have_output())
                        flood_fill();
                if (later_len > 0 && !have_output()) {
                        long long wait = later_at - now_ms();
                        if (wait <= 0) {
                                emit(later, later_len);
                                later_len = 0;
                        } else if (wait < timeout_ms)
                                timeout_ms = (int) wait;
                }
                while (backlog_pos < backlog_len && !busy())
                        backlog_pos += consume(backlog + backlog_pos, backlog_len - backlog_pos);
                if (backlog_pos == backlog_len && !busy())
                        p.events |= POLLIN;
                if (have_output())
                        p.events |= POLLOUT;

                if (poll(&p, 1, timeout_ms) < 0) {
                        if (errno != EINTR)
                                pause_briefly();
                        continue;
                }
                if (p.revents & POLLHUP) {
                        /* Host end closed: reads return 0 until it is back. */
                        pause_briefly();
                        continue;
                }
                if (p.revents & (POLLIN | POLLERR | POLLNVAL) && backlog_pos == backlog_len) {
                        n = read(fd, backlog, sizeof(backlog));
                        if (n > 0) {
                                backlog_pos = 0;
                                backlog_len = (size_t) n;
                        } else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                                pause_briefly();
                }
                if (p.revents & POLLOUT) {
                        n = push(fd);
                        if (n < 0 && errno != EAGAIN && errno != EINTR)
                                pause_briefly();
                }
        }
}

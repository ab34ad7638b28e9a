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

enum mode { MODE_FLOOD, MODE_SILENT, MODE_HUGELINE, MODE_STALE, MODE_RECOVER };

static enum mode mode;
static const char *port;
static time_t recover_at;

/* Pending output: out[out_pos..out_len), then huge_left bytes of 'A' and a
 * newline (hugeline), then huge_pending more such lines. */
static char out[OUT_MAX];
static size_t out_len, out_pos;
static uint64_t huge_left;
static unsigned huge_pending;
static char huge_chunk[OUT_MAX];

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
        char buf[128];
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

static void answer(void) {
        switch (mode) {
        case MODE_HUGELINE:
                if (huge_left == 0)
                        huge_left = HUGE_LINE_BYTES;
                else
                        huge_pending++;
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
 * complete top-level object. */
static void consume(const unsigned char *buf, size_t n) {
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
                        }
                }
        }
}

static int have_output(void) {
        return out_pos < out_len || huge_left > 0;
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
        if (huge_left > 1) {
                size_t want = huge_left - 1 < sizeof(huge_chunk) ? huge_left - 1 : sizeof(huge_chunk);
                n = write(fd, huge_chunk, want);
        } else {
                n = write(fd, "\n", 1);
        }
        if (n > 0) {
                huge_left -= (uint64_t) n;
                if (huge_left == 0 && huge_pending > 0) {
                        huge_pending--;
                        huge_left = HUGE_LINE_BYTES;
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
        } else
                return -1;
        return 0;
}

int main(int argc, char **argv) {
        int fd;

        if (argc != 3 || parse_mode(argv[1]) < 0) {
                fprintf(stderr, "usage: %s flood|silent|hugeline|stale|recover[:SECONDS] PORT\n", argv[0]);
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
                struct pollfd p = { .fd = fd, .events = POLLIN };
                unsigned char buf[65536];
                ssize_t n;

                if (mode == MODE_RECOVER && time(NULL) >= recover_at)
                        become_real_agent(fd);
                if ((mode == MODE_FLOOD || mode == MODE_RECOVER) && !have_output())
                        flood_fill();
                if (have_output())
                        p.events |= POLLOUT;

                if (poll(&p, 1, 1000) < 0) {
                        if (errno != EINTR)
                                pause_briefly();
                        continue;
                }
                if (p.revents & POLLHUP) {
                        /* Host end closed: reads return 0 until it is back. */
                        pause_briefly();
                        continue;
                }
                if (p.revents & (POLLIN | POLLERR | POLLNVAL)) {
                        n = read(fd, buf, sizeof(buf));
                        if (n > 0)
                                consume(buf, (size_t) n);
                        else if (n == 0 || (errno != EAGAIN && errno != EINTR))
                                pause_briefly();
                }
                if (p.revents & POLLOUT) {
                        n = push(fd);
                        if (n < 0 && errno != EAGAIN && errno != EINTR)
                                pause_briefly();
                }
        }
}

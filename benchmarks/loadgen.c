/*
 * loadgen: the IRC load generator behind `make bench` (benchmarks/bench.py drives it).
 *
 * One process, one thread, epoll over non-blocking sockets: it keeps up with a server that moves
 * hundreds of thousands of lines a second while using one core, and it reports its own CPU time
 * over the measured window so a saturated generator is visible.
 *
 * Rules:
 * 1. Loopback only: the target and every source address must lie in 127.0.0.0/8.
 * 2. Bounded: every phase has a deadline, the whole run has a hard deadline, every buffer a cap;
 *    messages in flight are bounded by --window (per sender).
 * 3. Output: one JSON object on stdout; progress and errors on stderr.
 *
 * Workloads (see docs/benchmarks.md):
 *   w1   connect storm: --clients connect and register at once.
 *   w2   idle hold: --clients register (over --sources), then each sends one PING, spread over
 *        --duration; the server's VmRSS is read before and after (needs --server-pid).
 *   w3   fan-out: --clients join one channel, --senders of them send 64-byte PRIVMSGs as fast
 *        as the window allows for --duration.
 *   w3r  the same at a fixed --rate of messages per second in total.
 *   w4   pairs: --clients/2 pairs ping-pong private messages, one in flight per pair.
 *
 * --ws speaks IRC over WebSocket (IRCv3 websocket, text.ircv3.net) to relaychat's HTTP port
 * (--port is then the HTTP port, path /ws): each line goes as one masked text frame (mask key 0),
 * each frame the server sends is one line; server pings get pongs.
 *
 * --port2 PORT spreads the clients over two servers (nodes of one relaychat cluster): every
 * odd-numbered client connects there. In w3 the members and the senders are then split evenly;
 * in w4 every pair has one client on each. --extra-pid PID (up to 4 times) adds processes
 * whose CPU time over the measured window is reported too ("extra_cpu_s"), such as the second
 * node and the NATS server.
 *
 * --quickack makes every client ACK what it reads at once (TCP_QUICKACK after each read). Without
 * it the kernel delays ACKs, and a server that leaves Nagle's algorithm on (no TCP_NODELAY) then
 * holds back each write while earlier bytes are unacknowledged: on a fan-out that caps it far
 * below its CPU capacity.
 *
 * Every message text is 64 bytes: "s<sender:2> q<seq:10> t<send time ns:19> " padded with 'x'.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#ifndef IP_BIND_ADDRESS_NO_PORT
#define IP_BIND_ADDRESS_NO_PORT 24
#endif

#define TAIL_MAX 1024           /* longest partial line kept between reads */
#define OUT_MAX (4u << 20)      /* most bytes queued to one socket before we give up on it */
#define READ_CHUNK 65536
#define MAX_EVENTS 1024
#define MAX_CLIENTS 20000
#define MAX_SENDERS 64
#define MAX_WINDOW 4096
#define TEXT_LEN 64
#define MAX_ERRORS 8

enum state { ST_IDLE, ST_CONNECTING, ST_REGISTERING, ST_OPERING, ST_MODING, ST_JOINING, ST_READY,
             ST_DEAD };

enum workload { W1, W2, W3, W3R, W4 };

typedef struct {
    int fd;
    uint8_t state;
    uint8_t want_out;
    uint16_t tail_len;
    uint8_t ws_hs;        /* --ws: waiting for the 101 answer to the WebSocket handshake */
    uint32_t src;         /* source address, host order (0: let the kernel pick) */
    int64_t t_start;      /* ns: just before connect() */
    int64_t t_reg;        /* ns: 001 received */
    int64_t ping_at;      /* w2: ns the PING went out (0: none outstanding) */
    char *out;
    uint32_t out_len, out_cap;
    char tail[TAIL_MAX];
} client_t;

/* A latency histogram: 1 us buckets up to 1 s, then 1 ms buckets up to 60 s. */
#define FINE_N 1000000
#define COARSE_N 60000
typedef struct {
    uint32_t *fine;
    uint32_t *coarse;
    uint64_t over, n;
    int64_t max_ns;
    double sum_ns;
} hist_t;

static struct {
    const char *host;
    int port;
    enum workload wl;
    const char *wl_name;
    int clients;
    double duration;
    double rate;
    int window;
    int concurrency;
    double setup_timeout;
    double drain;
    double settle;
    const char *oper_name, *oper_pass;
    const char *umode;
    const char *channel;
    const char *nick_prefix;
    int server_pid;
    int port2;
    int extra_pids[4];
    int n_extra;
    uint32_t src_first, src_last;
    int senders;
    int retries;
    int quickack;
    int ws;
    int verbose;
} cfg = {
    .host = "127.0.0.1", .port = 6667, .clients = 0, .duration = 10.0, .rate = 1000.0,
    .window = 16, .concurrency = 200, .setup_timeout = 120.0, .drain = 3.0, .settle = 1.0,
    .nick_prefix = NULL, .server_pid = 0, .senders = 10, .retries = 5,
};

static client_t *clients;
static int nclients;
static int epfd;
static struct sockaddr_in target, target2;
static volatile sig_atomic_t stop_flag;
static char rbuf[TAIL_MAX + READ_CHUNK + 1];

/* setup: a queue of clients to connect (failed ones go back in, up to cfg.retries times) */
static int *queue, q_head, q_len, in_progress;
static uint8_t *attempts;
static int n_retries;

/* counters */
static int n_ready, n_failed, n_registered, n_dead_after_setup;
static int setup_done;
static char errors[MAX_ERRORS][160];
static int n_errors;

/* measurement */
static int measuring;
static int64_t t_meas_start, t_meas_end;
static hist_t hist;
static uint64_t delivered_in_window, delivered_total, roundtrips_in_window;
static uint64_t pings_sent, pongs_received;
/* w3/w3r: per sender */
static uint64_t sent[MAX_SENDERS], done_seq[MAX_SENDERS], sent_in_window;
static uint32_t *ring;  /* [MAX_SENDERS][window] receipt counts */
static int expect_receivers;
/* w4 */
static uint64_t w4_outstanding;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static double cpu_self_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double cpu_pid_s(int pid, double *sys);

/* The server's utime+stime in seconds from /proc/<pid>/stat, or -1; its stime goes in *sys. */
static double cpu_server_s(double *sys) { return cpu_pid_s(cfg.server_pid, sys); }

static double cpu_pid_s(int pid, double *sys) {
    *sys = -1.0;
    if (pid <= 0) return -1.0;
    char path[64], buf[2048];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1.0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *p = strrchr(buf, ')');
    if (!p) return -1.0;
    /* after ") " come fields 3..; utime is field 14, stime 15 */
    unsigned long long ut = 0, st = 0;
    int field = 2;
    for (char *tok = strtok(p + 1, " "); tok; tok = strtok(NULL, " ")) {
        field++;
        if (field == 14) ut = strtoull(tok, NULL, 10);
        if (field == 15) { st = strtoull(tok, NULL, 10); break; }
    }
    *sys = (double)st / (double)sysconf(_SC_CLK_TCK);
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* The server's VmRSS in KiB from /proc/<pid>/status, or -1. */
static long rss_server_kib(void) {
    if (cfg.server_pid <= 0) return -1;
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", cfg.server_pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "VmRSS:", 6) == 0) { kib = strtol(line + 6, NULL, 10); break; }
    fclose(f);
    return kib;
}

static void note_error(const char *fmt, ...) {
    if (n_errors >= MAX_ERRORS) { n_errors++; return; }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errors[n_errors], sizeof errors[0], fmt, ap);
    va_end(ap);
    if (cfg.verbose) fprintf(stderr, "loadgen: %s\n", errors[n_errors]);
    n_errors++;
}

static void hist_init(hist_t *h) {
    memset(h, 0, sizeof *h);
    h->fine = calloc(FINE_N, sizeof(uint32_t));
    h->coarse = calloc(COARSE_N, sizeof(uint32_t));
    if (!h->fine || !h->coarse) { perror("calloc"); exit(2); }
}

static void hist_add(hist_t *h, int64_t ns) {
    if (ns < 0) ns = 0;
    int64_t us = ns / 1000;
    if (us < FINE_N) h->fine[us]++;
    else if (ns / 1000000 < COARSE_N) h->coarse[ns / 1000000]++;
    else h->over++;
    h->n++;
    h->sum_ns += (double)ns;
    if (ns > h->max_ns) h->max_ns = ns;
}

/* The q-quantile in milliseconds (-1 when empty). */
static double hist_q_ms(const hist_t *h, double q) {
    if (h->n == 0) return -1.0;
    uint64_t rank = (uint64_t)(q * (double)(h->n - 1)) + 1, seen = 0;
    for (int i = 0; i < FINE_N; i++) {
        seen += h->fine[i];
        if (seen >= rank) return (i + 0.5) / 1000.0;
    }
    for (int i = 0; i < COARSE_N; i++) {
        seen += h->coarse[i];
        if (seen >= rank) return i + 0.5;
    }
    return h->max_ns / 1e6;
}

static void nick_of(int i, char *out, size_t cap) {
    snprintf(out, cap, "%s%d", cfg.nick_prefix, i);
}

static void set_events(int i, int want_out) {
    client_t *c = &clients[i];
    if (c->want_out == want_out) return;
    struct epoll_event ev = {.events = EPOLLIN | (want_out ? EPOLLOUT : 0), .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev);
    c->want_out = (uint8_t)want_out;
}

static void kill_client(int i, const char *why) {
    client_t *c = &clients[i];
    if (c->state == ST_DEAD) return;
    int was_ready = c->state == ST_READY;
    int retry = !setup_done && !was_ready && attempts[i] < cfg.retries;
    if (retry) {
        if (cfg.verbose) fprintf(stderr, "loadgen: client %d retried (state %d): %s\n", i, c->state, why);
    } else if (!setup_done) {
        note_error("client %d failed in setup (state %d): %s", i, c->state, why);
    } else {
        note_error("client %d disconnected: %s", i, why);
    }
    c->state = ST_DEAD;
    if (c->fd >= 0) {
        epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd, NULL);
        close(c->fd);
    }
    c->fd = -1;
    free(c->out);
    c->out = NULL;
    c->out_len = c->out_cap = 0;
    c->want_out = 0;
    c->tail_len = 0;
    if (setup_done) {
        n_dead_after_setup++;
    } else if (was_ready) {
        n_ready--;
        n_failed++;
    } else {
        in_progress--;
        if (c->t_reg) { n_registered--; c->t_reg = 0; }
        if (retry) {
            attempts[i]++;
            n_retries++;
            c->state = ST_IDLE;
            queue[(q_head + q_len++) % nclients] = i;
        } else {
            n_failed++;
        }
    }
}

static void cwrite(int i, const char *buf, size_t len) {
    client_t *c = &clients[i];
    if (c->state == ST_DEAD || len == 0) return;
    if (c->out_len == 0 && c->state != ST_CONNECTING) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n == (ssize_t)len) return;
        if (n < 0) {
            if (errno != EAGAIN && errno != EWOULDBLOCK) { kill_client(i, strerror(errno)); return; }
            n = 0;
        }
        buf += n;
        len -= (size_t)n;
    }
    if (c->out_len + len > OUT_MAX) { kill_client(i, "generator output queue overflow"); return; }
    if (c->out_len + len > c->out_cap) {
        uint32_t cap = c->out_cap ? c->out_cap : 1024;
        while (cap < c->out_len + len) cap *= 2;
        char *p = realloc(c->out, cap);
        if (!p) { perror("realloc"); exit(2); }
        c->out = p;
        c->out_cap = cap;
    }
    memcpy(c->out + c->out_len, buf, len);
    c->out_len += (uint32_t)len;
    if (c->state != ST_CONNECTING) set_events(i, 1);
}

/* Write IRC lines: as they are, or (--ws) each as one masked WebSocket text frame. */
static char wsbuf[1 << 20];
static void lwrite(int i, const char *buf, size_t len) {
    if (!cfg.ws) { cwrite(i, buf, len); return; }
    size_t o = 0;
    const char *p = buf, *end = buf + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        size_t n = (size_t)(e - p) - ((e > p && e[-1] == '\r') ? 1 : 0);
        if (n && n < 65536) {
            if (o + n + 8 > sizeof wsbuf) { cwrite(i, wsbuf, o); o = 0; }
            wsbuf[o++] = (char)0x81; /* FIN, text */
            if (n < 126) {
                wsbuf[o++] = (char)(0x80 | n);
            } else {
                wsbuf[o++] = (char)(0x80 | 126);
                wsbuf[o++] = (char)(n >> 8);
                wsbuf[o++] = (char)(n & 0xff);
            }
            memset(wsbuf + o, 0, 4); /* mask key 0: the payload goes unchanged */
            o += 4;
            memcpy(wsbuf + o, p, n);
            o += n;
        }
        p = nl ? nl + 1 : end;
    }
    if (o) cwrite(i, wsbuf, o);
}

static void flush_out(int i) {
    client_t *c = &clients[i];
    while (c->out_len) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            kill_client(i, strerror(errno));
            return;
        }
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (uint32_t)n;
    }
    set_events(i, 0);
}

static void start_connect(int i) {
    client_t *c = &clients[i];
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) { c->fd = -1; c->state = ST_CONNECTING; kill_client(i, strerror(errno)); return; }
    c->fd = fd;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (c->src) {
        setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0,
                                 .sin_addr.s_addr = htonl(c->src)};
        if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
            c->state = ST_CONNECTING;
            struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
            epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
            kill_client(i, "bind failed");
            return;
        }
    }
    c->t_start = now_ns();
    c->state = ST_CONNECTING;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT, .data.u32 = (uint32_t)i};
    epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
    c->want_out = 1;
    struct sockaddr_in *to = (cfg.port2 && (i % 2)) ? &target2 : &target;
    int r = connect(fd, (struct sockaddr *)to, sizeof *to);
    if (r < 0 && errno != EINPROGRESS) kill_client(i, strerror(errno));
}

static void send_registration(int i) {
    char nick[32], buf[128];
    nick_of(i, nick, sizeof nick);
    int n = snprintf(buf, sizeof buf, "NICK %s\r\nUSER %s 0 * :loadgen\r\n", nick, nick);
    clients[i].state = ST_REGISTERING;
    lwrite(i, buf, (size_t)n);
}

static void become_ready(int i) {
    clients[i].state = ST_READY;
    n_ready++;
    in_progress--;
}

/* After 001 (or the previous setup step): OPER, then the user mode, then JOIN, then ready. */
static void next_setup_step(int i, int from) {
    char nick[32], buf[256];
    nick_of(i, nick, sizeof nick);
    int n;
    if (from < ST_OPERING && cfg.oper_name) {
        clients[i].state = ST_OPERING;
        n = snprintf(buf, sizeof buf, "OPER %s %s\r\n", cfg.oper_name, cfg.oper_pass);
    } else if (from < ST_MODING && cfg.umode) {
        clients[i].state = ST_MODING;
        n = snprintf(buf, sizeof buf, "MODE %s %s\r\n", nick, cfg.umode);
    } else if (from < ST_JOINING && cfg.channel) {
        clients[i].state = ST_JOINING;
        n = snprintf(buf, sizeof buf, "JOIN %s\r\n", cfg.channel);
    } else {
        become_ready(i);
        return;
    }
    lwrite(i, buf, (size_t)n);
}

static void format_text(char *text, int sender, uint64_t seq, int64_t ts) {
    char tmp[TEXT_LEN + 1];
    int n = snprintf(tmp, sizeof tmp, "s%02d q%010" PRIu64 " t%019" PRId64 " ", sender, seq, ts);
    memcpy(text, tmp, (size_t)n);
    memset(text + n, 'x', (size_t)(TEXT_LEN - n));
}

static uint64_t parse_digits(const char *p, int n) {
    uint64_t v = 0;
    for (int k = 0; k < n; k++) {
        if (p[k] < '0' || p[k] > '9') return UINT64_MAX;
        v = v * 10 + (uint64_t)(p[k] - '0');
    }
    return v;
}

/* Parse our message text; 0 on success. */
static int parse_text(const char *text, size_t len, int *sender, uint64_t *seq, int64_t *ts) {
    if (len < 37 || text[0] != 's' || text[4] != 'q' || text[16] != 't') return -1;
    uint64_t s = parse_digits(text + 1, 2), q = parse_digits(text + 5, 10),
             t = parse_digits(text + 17, 19);
    if (s == UINT64_MAX || q == UINT64_MAX || t == UINT64_MAX) return -1;
    *sender = (int)s;
    *seq = q;
    *ts = (int64_t)t;
    return 0;
}

static void send_privmsg(int from, const char *target_name, int sender, uint64_t seq) {
    char buf[TEXT_LEN + 128];
    int n = snprintf(buf, sizeof buf, "PRIVMSG %s :", target_name);
    format_text(buf + n, sender, seq, now_ns());
    n += TEXT_LEN;
    buf[n++] = '\r';
    buf[n++] = '\n';
    lwrite(from, buf, (size_t)n);
}

/* --- workload-specific handling of our PRIVMSGs ------------------------------------------------ */

static void w3_receipt(int receiver, const char *text, size_t len) {
    (void)receiver;
    int s;
    uint64_t q;
    int64_t ts;
    if (parse_text(text, len, &s, &q, &ts) != 0 || s >= cfg.senders) return;
    int64_t t = now_ns();
    delivered_total++;
    if (measuring && t >= t_meas_start && t < t_meas_end) {
        delivered_in_window++;
        hist_add(&hist, t - ts);
    }
    if (q < done_seq[s] || q >= done_seq[s] + (uint64_t)cfg.window) return; /* not ours to count */
    uint32_t *r = ring + (size_t)s * (size_t)cfg.window;
    r[q % (uint64_t)cfg.window]++;
    while (done_seq[s] < sent[s] && r[done_seq[s] % (uint64_t)cfg.window] >= (uint32_t)expect_receivers) {
        r[done_seq[s] % (uint64_t)cfg.window] = 0;
        done_seq[s]++;
    }
}

static void w4_receipt(int receiver, const char *text, size_t len) {
    char nick[32];
    if (receiver & 1) {
        /* B: echo the text back to A */
        char buf[TEXT_LEN + 128];
        nick_of(receiver - 1, nick, sizeof nick);
        int n = snprintf(buf, sizeof buf, "PRIVMSG %s :", nick);
        if (len > TEXT_LEN) len = TEXT_LEN;
        memcpy(buf + n, text, len);
        n += (int)len;
        buf[n++] = '\r';
        buf[n++] = '\n';
        lwrite(receiver, buf, (size_t)n);
        return;
    }
    int s;
    uint64_t q;
    int64_t ts;
    if (parse_text(text, len, &s, &q, &ts) != 0) return;
    int64_t t = now_ns();
    if (w4_outstanding) w4_outstanding--;
    if (measuring && t >= t_meas_start && t < t_meas_end) {
        roundtrips_in_window++;
        hist_add(&hist, t - ts);
    }
    if (measuring && t < t_meas_end && !stop_flag) {
        nick_of(receiver + 1, nick, sizeof nick);
        send_privmsg(receiver, nick, 0, q + 1);
        w4_outstanding++;
    }
}

/* --- line handling ---------------------------------------------------------------------------- */

static int is_setup_error(const char *cmd) {
    static const char *const codes[] = {"431", "432", "433", "436", "437", "451", "461", "464",
                                        "465", "481", "491", "501", "403", "405", "471", "473",
                                        "474", "475", "477", NULL};
    for (int k = 0; codes[k]; k++)
        if (strcmp(cmd, codes[k]) == 0) return 1;
    return 0;
}

static void on_line(int i, char *line, size_t len) {
    client_t *c = &clients[i];
    char *p = line, *end = line + len;
    if (*p == '@') { /* IRCv3 tags */
        p = memchr(p, ' ', (size_t)(end - p));
        if (!p) return;
        while (p < end && *p == ' ') p++;
    }
    if (p < end && *p == ':') {
        p = memchr(p, ' ', (size_t)(end - p));
        if (!p) return;
        while (p < end && *p == ' ') p++;
    }
    char *cmd = p;
    char *sp = memchr(p, ' ', (size_t)(end - p));
    char *rest = end;
    if (sp) { *sp = 0; rest = sp + 1; }
    /* The hot path first: our PRIVMSGs. */
    if (cmd[0] == 'P' && strcmp(cmd, "PRIVMSG") == 0) {
        char *text = strstr(rest, " :");
        if (!text) return;
        text += 2;
        if (cfg.wl == W3 || cfg.wl == W3R) w3_receipt(i, text, (size_t)(end - text));
        else if (cfg.wl == W4) w4_receipt(i, text, (size_t)(end - text));
        return;
    }
    if (strcmp(cmd, "PING") == 0) {
        char buf[600];
        int n = snprintf(buf, sizeof buf, "PONG %.*s\r\n", (int)(end - rest), rest);
        lwrite(i, buf, (size_t)n);
        return;
    }
    if (strcmp(cmd, "PONG") == 0) {
        if (c->ping_at) {
            int64_t t = now_ns();
            hist_add(&hist, t - c->ping_at);
            c->ping_at = 0;
            pongs_received++;
        }
        return;
    }
    if (strcmp(cmd, "ERROR") == 0) {
        kill_client(i, rest);
        return;
    }
    switch (c->state) {
    case ST_REGISTERING:
        if (strcmp(cmd, "001") == 0) {
            c->t_reg = now_ns();
            n_registered++;
            next_setup_step(i, ST_REGISTERING);
        } else if (is_setup_error(cmd)) {
            kill_client(i, cmd);
        }
        break;
    case ST_OPERING:
        if (strcmp(cmd, "381") == 0) next_setup_step(i, ST_OPERING);
        else if (is_setup_error(cmd)) kill_client(i, "OPER refused");
        break;
    case ST_MODING:
        if (strcmp(cmd, "MODE") == 0) next_setup_step(i, ST_MODING);
        else if (is_setup_error(cmd)) kill_client(i, "MODE refused");
        break;
    case ST_JOINING:
        if (strcmp(cmd, "366") == 0) next_setup_step(i, ST_JOINING);
        else if (is_setup_error(cmd)) kill_client(i, "JOIN refused");
        break;
    default:
        break;
    }
}

/* --ws: the handshake answer, then one line per server frame (kept whole across reads). */
static void ws_input(int i, char *buf, size_t total) {
    client_t *c = &clients[i];
    char *p = buf, *end = buf + total;
    if (c->ws_hs) {
        char *hdr_end = memmem(p, total, "\r\n\r\n", 4);
        if (!hdr_end) {
            if (total > TAIL_MAX) { kill_client(i, "WebSocket handshake answer too long"); return; }
            memcpy(c->tail, p, total);
            c->tail_len = (uint16_t)total;
            return;
        }
        if (total < 12 || memcmp(p, "HTTP/1.1 101", 12) != 0) {
            kill_client(i, "WebSocket handshake refused");
            return;
        }
        c->ws_hs = 0;
        p = hdr_end + 4;
        send_registration(i);
        if (c->state == ST_DEAD) return;
    }
    while (end - p >= 2) {
        uint8_t b0 = (uint8_t)p[0], b1 = (uint8_t)p[1];
        size_t hl = 2, n = b1 & 0x7f;
        if (n == 126) {
            if (end - p < 4) break;
            n = ((size_t)(uint8_t)p[2] << 8) | (uint8_t)p[3];
            hl = 4;
        } else if (n == 127) {
            kill_client(i, "WebSocket frame too large for the generator");
            return;
        }
        if ((size_t)(end - p) < hl + n) break;
        char *payload = p + hl;
        int op = b0 & 0x0f;
        if (op == 1 || op == 2) {
            char save = payload[n];
            payload[n] = 0;
            on_line(i, payload, n);
            if (clients[i].state == ST_DEAD) return;
            payload[n] = save;
        } else if (op == 9 && n < 126) { /* ping: pong with the same payload, masked (key 0) */
            char pong[6 + 125] = {(char)0x8A, (char)(0x80 | n), 0, 0, 0, 0};
            memcpy(pong + 6, payload, n);
            cwrite(i, pong, 6 + n);
        } else if (op == 8) {
            kill_client(i, "WebSocket closed by the server");
            return;
        }
        p += hl + n;
    }
    size_t left = (size_t)(end - p);
    if (left > TAIL_MAX) { kill_client(i, "WebSocket frame too large for the generator"); return; }
    memcpy(c->tail, p, left);
    c->tail_len = (uint16_t)left;
}

static void on_readable(int i) {
    client_t *c = &clients[i];
    size_t have = c->tail_len;
    memcpy(rbuf, c->tail, have);
    ssize_t n = recv(c->fd, rbuf + have, READ_CHUNK, 0);
    if (cfg.quickack && n > 0) {
        /* ACK at once instead of the kernel's delayed ACK: a server that leaves Nagle on (no
         * TCP_NODELAY) otherwise stalls on every partly acknowledged write. */
        int one = 1;
        setsockopt(c->fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof one);
    }
    if (n == 0) { kill_client(i, "connection closed by server"); return; }
    if (n < 0) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) return;
        kill_client(i, strerror(errno));
        return;
    }
    size_t total = have + (size_t)n;
    if (cfg.ws) { ws_input(i, rbuf, total); return; }
    char *p = rbuf, *end = rbuf + total;
    for (;;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        char *e = nl;
        if (e > p && e[-1] == '\r') e--;
        *e = 0;
        if (e > p) on_line(i, p, (size_t)(e - p));
        if (clients[i].state == ST_DEAD) return;
        p = nl + 1;
    }
    size_t left = (size_t)(end - p);
    if (left > TAIL_MAX) left = 0; /* an overlong line: drop it */
    memcpy(c->tail, p, left);
    c->tail_len = (uint16_t)left;
}

static void on_writable(int i) {
    client_t *c = &clients[i];
    if (c->state == ST_CONNECTING) {
        int err = 0;
        socklen_t el = sizeof err;
        getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &el);
        if (err) { kill_client(i, strerror(err)); return; }
        set_events(i, 0);
        if (cfg.ws) {
            char req[256];
            int n = snprintf(req, sizeof req,
                             "GET /ws HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                             "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: text.ircv3.net\r\n\r\n",
                             cfg.host, cfg.port);
            c->state = ST_REGISTERING;
            c->ws_hs = 1;
            cwrite(i, req, (size_t)n);
        } else {
            send_registration(i);
        }
        if (c->out_len) set_events(i, 1);
        return;
    }
    flush_out(i);
}

/* One turn of the event loop, waiting at most timeout_ms. */
static void poll_once(int timeout_ms) {
    static struct epoll_event evs[MAX_EVENTS];
    int n = epoll_wait(epfd, evs, MAX_EVENTS, timeout_ms);
    for (int k = 0; k < n; k++) {
        int i = (int)evs[k].data.u32;
        if (clients[i].state == ST_DEAD) continue;
        uint32_t e = evs[k].events;
        if (clients[i].state == ST_CONNECTING) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP)) on_writable(i);
            continue;
        }
        if (e & EPOLLIN) on_readable(i);
        if (clients[i].state == ST_DEAD) continue;
        if (e & EPOLLOUT) on_writable(i);
        else if (e & (EPOLLERR | EPOLLHUP)) kill_client(i, "socket error");
    }
}

/* Connect and set up every client, at most cfg.concurrency in progress at once. Returns the
 * time the last client became ready (ns), or 0 if not all did before the deadline. */
static int64_t run_setup(int64_t deadline) {
    int64_t last_ready = 0;
    queue = malloc(sizeof(int) * (size_t)nclients);
    attempts = calloc((size_t)nclients, 1);
    if (!queue || !attempts) { perror("malloc"); exit(2); }
    for (int i = 0; i < nclients; i++) queue[i] = i;
    q_head = 0;
    q_len = nclients;
    while (!stop_flag) {
        while (q_len > 0 && in_progress < cfg.concurrency) {
            int i = queue[q_head];
            q_head = (q_head + 1) % nclients;
            q_len--;
            in_progress++;
            start_connect(i);
        }
        if (n_ready + n_failed >= nclients) break;
        int64_t t = now_ns();
        if (t >= deadline) break;
        int before = n_ready;
        poll_once(10);
        if (n_ready != before) last_ready = now_ns();
    }
    return n_ready == nclients ? last_ready : 0;
}

/* Keep answering for a while (drains JOIN floods, lets the server settle). */
static void run_for(double seconds) {
    int64_t until = now_ns() + (int64_t)(seconds * 1e9);
    while (!stop_flag && now_ns() < until) poll_once(10);
}

/* --- JSON output ------------------------------------------------------------------------------ */

static void json_hist(const char *prefix) {
    printf("\"%s_n\": %" PRIu64 ", \"%s_p50_ms\": %.4f, \"%s_p99_ms\": %.4f, \"%s_max_ms\": %.4f, "
           "\"%s_mean_ms\": %.4f, ",
           prefix, hist.n, prefix, hist_q_ms(&hist, 0.50), prefix, hist_q_ms(&hist, 0.99), prefix,
           hist.max_ns / 1e6, prefix, hist.n ? hist.sum_ns / (double)hist.n / 1e6 : -1.0);
}

static void json_errors(void) {
    printf("\"errors\": %d, \"error_samples\": [", n_errors);
    int shown = n_errors < MAX_ERRORS ? n_errors : MAX_ERRORS;
    for (int k = 0; k < shown; k++) {
        putchar('"');
        for (const char *p = errors[k]; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar((unsigned char)*p < 0x20 ? '?' : *p);
        }
        printf("\"%s", k + 1 < shown ? ", " : "");
    }
    printf("]");
}

/* --- workloads -------------------------------------------------------------------------------- */

static double srv_sys_window = -1.0; /* the server's system (kernel) CPU over the window */

static double extra_cpu[4];

static void measure_window(double *gen_cpu, double *srv_cpu, double *wall) {
    static double g0, s0, k0, x0[4];
    static int64_t w0;
    double ignored;
    if (gen_cpu == NULL) {
        g0 = cpu_self_s();
        s0 = cpu_server_s(&k0);
        for (int k = 0; k < cfg.n_extra; k++) x0[k] = cpu_pid_s(cfg.extra_pids[k], &ignored);
        w0 = now_ns();
        return;
    }
    for (int k = 0; k < cfg.n_extra; k++) {
        double x1 = cpu_pid_s(cfg.extra_pids[k], &ignored);
        extra_cpu[k] = (x0[k] >= 0 && x1 >= 0) ? x1 - x0[k] : -1.0;
    }
    *gen_cpu = cpu_self_s() - g0;
    double k1;
    double s1 = cpu_server_s(&k1);
    *srv_cpu = (s0 >= 0 && s1 >= 0) ? s1 - s0 : -1.0;
    srv_sys_window = (k0 >= 0 && k1 >= 0) ? k1 - k0 : -1.0;
    *wall = (now_ns() - w0) / 1e9;
}

static void print_common(double gen_cpu, double srv_cpu, double wall) {
    printf("\"workload\": \"%s\", \"quickack\": %s, \"clients\": %d, \"ready\": %d, \"failed_setup\": %d, "
           "\"retried\": %d, \"disconnected\": %d, \"window_s\": %.3f, \"gen_cpu_s\": %.3f, \"gen_cpu_pct\": %.1f, "
           "\"server_cpu_s\": %.3f, \"server_cpu_pct\": %.1f, \"server_sys_pct\": %.1f, ",
           cfg.wl_name, cfg.quickack ? "true" : "false", nclients, n_ready, n_failed, n_retries, n_dead_after_setup, wall, gen_cpu,
           wall >= 0.05 ? 100.0 * gen_cpu / wall : -1.0, srv_cpu,
           (wall >= 0.05 && srv_cpu >= 0) ? 100.0 * srv_cpu / wall : -1.0,
           (wall >= 0.05 && srv_sys_window >= 0) ? 100.0 * srv_sys_window / wall : -1.0);
    printf("\"extra_cpu_s\": [");
    for (int k = 0; k < cfg.n_extra; k++) printf("%s%.3f", k ? ", " : "", extra_cpu[k]);
    printf("], ");
}

static int run_w1(void) {
    int64_t t0 = now_ns();
    measure_window(NULL, NULL, NULL);
    int64_t last = run_setup(t0 + (int64_t)(cfg.setup_timeout * 1e9));
    double g, s, w;
    measure_window(&g, &s, &w);
    setup_done = 1;
    int64_t t_last = 0;
    for (int i = 0; i < nclients; i++) {
        if (clients[i].t_reg) {
            hist_add(&hist, clients[i].t_reg - clients[i].t_start);
            if (clients[i].t_reg > t_last) t_last = clients[i].t_reg;
        }
    }
    double span = t_last ? (t_last - t0) / 1e9 : 0.0;
    printf("{");
    print_common(g, s, w);
    printf("\"registered\": %d, \"left_waiting\": %d, ", n_registered,
           nclients - n_registered - n_failed);
    if (last) printf("\"all_001_s\": %.4f, ", span);
    else printf("\"all_001_s\": null, ");
    printf("\"reg_per_s\": %.1f, ", span > 0 ? n_registered / span : 0.0);
    json_hist("reg");
    json_errors();
    printf("}\n");
    return 0;
}

static int run_w2(void) {
    long rss_before = rss_server_kib();
    int64_t t0 = now_ns();
    int64_t last = run_setup(t0 + (int64_t)(cfg.setup_timeout * 1e9));
    double setup_s = (now_ns() - t0) / 1e9;
    setup_done = 1;
    run_for(cfg.settle);
    long rss_after = rss_server_kib();
    /* Every ready client sends one PING, spread evenly over the duration. */
    int order_n = 0;
    int *order = malloc(sizeof(int) * (size_t)nclients);
    for (int i = 0; i < nclients; i++)
        if (clients[i].state == ST_READY) order[order_n++] = i;
    measure_window(NULL, NULL, NULL);
    int64_t start = now_ns();
    int64_t span = (int64_t)(cfg.duration * 1e9);
    int sent_n = 0;
    measuring = 1;
    t_meas_start = start;
    t_meas_end = start + span;
    int64_t hard = start + span + (int64_t)(cfg.drain * 1e9);
    while (!stop_flag) {
        int64_t t = now_ns();
        while (sent_n < order_n &&
               start + (int64_t)((double)span * sent_n / (order_n ? order_n : 1)) <= t) {
            int i = order[sent_n++];
            if (clients[i].state != ST_READY) continue;
            clients[i].ping_at = now_ns();
            lwrite(i, "PING :loadgen\r\n", 15);
            pings_sent++;
        }
        if (sent_n >= order_n && pongs_received >= pings_sent) break;
        if (t >= hard) break;
        poll_once(1);
    }
    double g, s, w;
    measure_window(&g, &s, &w);
    free(order);
    printf("{");
    print_common(g, s, w);
    printf("\"setup_s\": %.3f, \"all_ready\": %s, \"rss_before_kib\": %ld, \"rss_after_kib\": %ld, "
           "\"rss_per_conn_kib\": %.3f, \"pings_sent\": %" PRIu64 ", \"pongs_received\": %" PRIu64
           ", ",
           setup_s, last ? "true" : "false", rss_before, rss_after,
           (rss_before >= 0 && rss_after >= 0 && n_ready > 0)
               ? (double)(rss_after - rss_before) / n_ready
               : -1.0,
           pings_sent, pongs_received);
    json_hist("ping");
    json_errors();
    printf("}\n");
    return 0;
}

static int run_w3(void) {
    int64_t t0 = now_ns();
    int64_t last = run_setup(t0 + (int64_t)(cfg.setup_timeout * 1e9));
    setup_done = 1;
    if (!last) note_error("setup incomplete: %d of %d ready", n_ready, nclients);
    run_for(cfg.settle);
    /* The senders are the first ready members; every other ready member receives. */
    int sender_idx[MAX_SENDERS];
    int senders = 0;
    for (int i = 0; i < nclients && senders < cfg.senders; i++)
        if (clients[i].state == ST_READY) sender_idx[senders++] = i;
    expect_receivers = n_ready - 1;
    ring = calloc((size_t)MAX_SENDERS * (size_t)cfg.window, sizeof(uint32_t));
    int64_t span = (int64_t)(cfg.duration * 1e9);
    int paced = cfg.wl == W3R;
    double interval = paced ? (double)senders / cfg.rate * 1e9 : 0.0; /* ns per sender message */
    measure_window(NULL, NULL, NULL);
    int64_t start = now_ns();
    measuring = 1;
    t_meas_start = start;
    t_meas_end = start + span;
    while (!stop_flag && n_dead_after_setup == 0) {
        int64_t t = now_ns();
        if (t >= t_meas_end) break;
        int64_t next_due = t + 10000000;
        int sent_any = 0;
        for (int s = 0; s < senders; s++) {
            if (clients[sender_idx[s]].state != ST_READY) continue;
            char buf[64 * (TEXT_LEN + 32)];
            size_t blen = 0;
            while (sent[s] - done_seq[s] < (uint64_t)cfg.window && blen + TEXT_LEN + 32 < sizeof buf) {
                if (paced) {
                    int64_t due = start + (int64_t)(((double)sent[s] + (double)s / senders) * interval);
                    if (due > t) { if (due < next_due) next_due = due; break; }
                }
                int n = snprintf(buf + blen, sizeof buf - blen, "PRIVMSG %s :", cfg.channel);
                format_text(buf + blen + n, s, sent[s], now_ns());
                blen += (size_t)n + TEXT_LEN;
                buf[blen++] = '\r';
                buf[blen++] = '\n';
                sent[s]++;
                sent_in_window++;
            }
            if (blen) { lwrite(sender_idx[s], buf, blen); sent_any = 1; }
        }
        /* Block for events unless there is more to send right away: an idle generator must not
         * spin, or its CPU time would hide whether it is saturated. */
        int wait_ms = sent_any ? 0 : 10;
        if (paced) {
            int64_t d = next_due - now_ns();
            wait_ms = d <= 0 ? 0 : (int)((d + 999999) / 1000000);
            if (wait_ms > 10) wait_ms = 10;
        }
        poll_once(wait_ms);
    }
    double g, s, w;
    measure_window(&g, &s, &w);
    /* Drain: wait for every message to reach every member. */
    int64_t drain_until = now_ns() + (int64_t)(cfg.drain * 1e9);
    for (;;) {
        int all = 1;
        for (int k = 0; k < senders; k++)
            if (done_seq[k] < sent[k]) { all = 0; break; }
        if (all || stop_flag || now_ns() >= drain_until) break;
        poll_once(5);
    }
    uint64_t total_sent = 0;
    for (int k = 0; k < senders; k++) total_sent += sent[k];
    uint64_t expected = total_sent * (uint64_t)expect_receivers;
    double secs = span / 1e9;
    printf("{");
    print_common(g, s, w);
    printf("\"senders\": %d, \"members\": %d, \"window\": %d, \"target_rate\": %.1f, "
           "\"msgs_sent\": %" PRIu64 ", \"msgs_per_s\": %.1f, \"delivered_in_window\": %" PRIu64
           ", \"delivered_lines_per_s\": %.1f, \"delivered_total\": %" PRIu64
           ", \"expected_total\": %" PRIu64 ", \"lost\": %" PRId64 ", ",
           senders, n_ready, cfg.window, paced ? cfg.rate : 0.0, total_sent,
           sent_in_window / secs, delivered_in_window, delivered_in_window / secs, delivered_total,
           expected, (int64_t)expected - (int64_t)delivered_total);
    json_hist("lat");
    json_errors();
    printf("}\n");
    return 0;
}

static int run_w4(void) {
    if (nclients % 2) nclients--;
    int64_t t0 = now_ns();
    int64_t last = run_setup(t0 + (int64_t)(cfg.setup_timeout * 1e9));
    setup_done = 1;
    if (!last) note_error("setup incomplete: %d of %d ready", n_ready, nclients);
    run_for(cfg.settle);
    int64_t span = (int64_t)(cfg.duration * 1e9);
    measure_window(NULL, NULL, NULL);
    int64_t start = now_ns();
    measuring = 1;
    t_meas_start = start;
    t_meas_end = start + span;
    char nick[32];
    int pairs = 0;
    for (int a = 0; a + 1 < nclients; a += 2) {
        if (clients[a].state != ST_READY || clients[a + 1].state != ST_READY) continue;
        nick_of(a + 1, nick, sizeof nick);
        send_privmsg(a, nick, 0, 0);
        w4_outstanding++;
        pairs++;
    }
    while (!stop_flag && now_ns() < t_meas_end) poll_once(5);
    double g, s, w;
    measure_window(&g, &s, &w);
    int64_t drain_until = now_ns() + (int64_t)(cfg.drain * 1e9);
    while (!stop_flag && w4_outstanding && now_ns() < drain_until) poll_once(5);
    double secs = span / 1e9;
    printf("{");
    print_common(g, s, w);
    printf("\"pairs\": %d, \"roundtrips\": %" PRIu64 ", \"roundtrips_per_s\": %.1f, "
           "\"unanswered\": %" PRIu64 ", ",
           pairs, roundtrips_in_window, roundtrips_in_window / secs, w4_outstanding);
    json_hist("rtt");
    json_errors();
    printf("}\n");
    return 0;
}

/* --- main ------------------------------------------------------------------------------------- */

static void on_signal(int sig) {
    (void)sig;
    stop_flag = 1;
}

static void on_alarm(int sig) {
    (void)sig;
    const char msg[] = "loadgen: hard deadline reached, exiting\n";
    ssize_t r = write(2, msg, sizeof msg - 1);
    (void)r;
    _exit(3);
}

static int is_loopback(uint32_t host_order) { return (host_order >> 24) == 127; }

static uint32_t parse_ipv4(const char *s) {
    struct in_addr a;
    if (inet_pton(AF_INET, s, &a) != 1) {
        fprintf(stderr, "loadgen: not an IPv4 address: %s\n", s);
        exit(2);
    }
    uint32_t h = ntohl(a.s_addr);
    if (!is_loopback(h)) {
        fprintf(stderr, "loadgen: %s is not a loopback address (127.0.0.0/8 only)\n", s);
        exit(2);
    }
    return h;
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --workload w1|w2|w3|w3r|w4 --port PORT [--host 127.0.0.1]\n"
            "  [--clients N] [--duration S] [--rate MSGS_PER_S] [--window N] [--senders N]\n"
            "  [--concurrency N] [--setup-timeout S] [--drain S] [--settle S]\n"
            "  [--sources FIRST-LAST] [--oper NAME:PASS] [--umode +F] [--channel #NAME]\n"
            "  [--nick-prefix P] [--server-pid PID] [--retries N] [--quickack] [--ws] [--verbose]\n"
            "  [--port2 PORT] [--extra-pid PID]...\n");
    exit(2);
}

int main(int argc, char **argv) {
    static const struct option opts[] = {
        {"host", 1, 0, 'h'}, {"port", 1, 0, 'p'}, {"workload", 1, 0, 'w'},
        {"clients", 1, 0, 'n'}, {"duration", 1, 0, 'd'}, {"rate", 1, 0, 'r'},
        {"window", 1, 0, 'W'}, {"senders", 1, 0, 'S'}, {"concurrency", 1, 0, 'c'},
        {"setup-timeout", 1, 0, 'T'}, {"drain", 1, 0, 'D'}, {"settle", 1, 0, 'e'},
        {"sources", 1, 0, 's'}, {"oper", 1, 0, 'o'}, {"umode", 1, 0, 'u'},
        {"channel", 1, 0, 'C'}, {"nick-prefix", 1, 0, 'N'}, {"server-pid", 1, 0, 'P'},
        {"retries", 1, 0, 'R'}, {"quickack", 0, 0, 'Q'}, {"verbose", 0, 0, 'v'},
        {"ws", 0, 0, 'X'}, {"port2", 1, 0, 'q'}, {"extra-pid", 1, 0, 'x'},
        {0, 0, 0, 0}};
    int o;
    while ((o = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (o) {
        case 'h': cfg.host = optarg; break;
        case 'p': cfg.port = atoi(optarg); break;
        case 'w': cfg.wl_name = optarg; break;
        case 'n': cfg.clients = atoi(optarg); break;
        case 'd': cfg.duration = atof(optarg); break;
        case 'r': cfg.rate = atof(optarg); break;
        case 'W': cfg.window = atoi(optarg); break;
        case 'S': cfg.senders = atoi(optarg); break;
        case 'c': cfg.concurrency = atoi(optarg); break;
        case 'T': cfg.setup_timeout = atof(optarg); break;
        case 'D': cfg.drain = atof(optarg); break;
        case 'e': cfg.settle = atof(optarg); break;
        case 's': {
            char *dash = strchr(optarg, '-');
            if (dash) {
                *dash = 0;
                cfg.src_first = parse_ipv4(optarg);
                cfg.src_last = parse_ipv4(dash + 1);
            } else {
                cfg.src_first = cfg.src_last = parse_ipv4(optarg);
            }
            if (cfg.src_last < cfg.src_first) usage();
            break;
        }
        case 'o': {
            char *colon = strchr(optarg, ':');
            if (!colon) usage();
            *colon = 0;
            cfg.oper_name = optarg;
            cfg.oper_pass = colon + 1;
            break;
        }
        case 'u': cfg.umode = optarg; break;
        case 'C': cfg.channel = optarg; break;
        case 'N': cfg.nick_prefix = optarg; break;
        case 'P': cfg.server_pid = atoi(optarg); break;
        case 'R': cfg.retries = atoi(optarg); break;
        case 'Q': cfg.quickack = 1; break;
        case 'X': cfg.ws = 1; break;
        case 'q': cfg.port2 = atoi(optarg); break;
        case 'x':
            if (cfg.n_extra >= 4) usage();
            cfg.extra_pids[cfg.n_extra++] = atoi(optarg);
            break;
        case 'v': cfg.verbose = 1; break;
        default: usage();
        }
    }
    if (!cfg.wl_name) usage();
    struct { const char *name; enum workload wl; int clients; const char *prefix; } table[] = {
        {"w1", W1, 2000, "c"}, {"w2", W2, 10000, "i"}, {"w3", W3, 200, "f"},
        {"w3r", W3R, 200, "r"}, {"w4", W4, 1000, "p"}};
    int found = 0;
    for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
        if (strcmp(cfg.wl_name, table[k].name) == 0) {
            cfg.wl = table[k].wl;
            if (!cfg.clients) cfg.clients = table[k].clients;
            if (!cfg.nick_prefix) cfg.nick_prefix = table[k].prefix;
            found = 1;
        }
    }
    if (!found) usage();
    if ((cfg.wl == W3 || cfg.wl == W3R) && !cfg.channel) cfg.channel = "#bench";
    if (cfg.wl == W1) { cfg.concurrency = cfg.clients; cfg.retries = 0; } /* all at once */
    if (cfg.clients < 1 || cfg.clients > MAX_CLIENTS || cfg.port <= 0 || cfg.port > 65535 ||
        cfg.window < 1 || cfg.window > MAX_WINDOW || cfg.senders < 1 ||
        cfg.senders > MAX_SENDERS || cfg.duration <= 0 || cfg.duration > 600 ||
        cfg.rate <= 0 || cfg.concurrency < 1)
        usage();
    uint32_t host = parse_ipv4(cfg.host);

    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGALRM, on_alarm);
    /* The hard deadline: nothing runs longer than setup + duration + drain + settle + 60 s. */
    alarm((unsigned)(cfg.setup_timeout + cfg.duration + cfg.drain + cfg.settle + 60));

    target.sin_family = AF_INET;
    target.sin_port = htons((uint16_t)cfg.port);
    target.sin_addr.s_addr = htonl(host);
    target2 = target;
    target2.sin_port = htons((uint16_t)(cfg.port2 ? cfg.port2 : cfg.port));
    nclients = cfg.clients;
    clients = calloc((size_t)nclients, sizeof(client_t));
    if (!clients) { perror("calloc"); return 2; }
    uint32_t nsrc = cfg.src_first ? cfg.src_last - cfg.src_first + 1 : 0;
    for (int i = 0; i < nclients; i++) {
        clients[i].fd = -1;
        clients[i].src = nsrc ? cfg.src_first + (uint32_t)i % nsrc : 0;
    }
    epfd = epoll_create1(EPOLL_CLOEXEC);
    if (epfd < 0) { perror("epoll_create1"); return 2; }
    hist_init(&hist);
    int rc;
    switch (cfg.wl) {
    case W1: rc = run_w1(); break;
    case W2: rc = run_w2(); break;
    case W3:
    case W3R: rc = run_w3(); break;
    default: rc = run_w4(); break;
    }
    fflush(stdout);
    return rc;
}

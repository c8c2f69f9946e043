/* A TCP link with a fixed one-way delay, for the load study's "database over a network" runs.
 *
 *     cc -O2 -o delaylink example/delaylink.c
 *     ./delaylink LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MICROSECONDS
 *
 * Listens on 127.0.0.1:LISTEN_PORT (0: any free port; the port is printed on the first line
 * of standard output) and forwards every connection to TARGET_HOST:TARGET_PORT. Each chunk
 * read from either side is written to the other side DELAY_MICROSECONDS after it arrived,
 * in order, so a request/response exchange takes two delays more than on loopback: 500 us
 * makes a 1 ms round trip. A close (or reset) travels with the same delay.
 *
 * It exists because `tc qdisc ... netem` needs a kernel built with sch_netem, which many
 * virtual machines and containers lack; example/study.py uses netem-free network emulation
 * this way. One thread, epoll and a timerfd, a few microseconds of CPU per chunk; reads do
 * not block, writes do (a peer that stops reading stalls the whole link). Stops on SIGTERM
 * or SIGINT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define CHUNK 65536
#define MAX_EVENTS 256

struct segment {
    struct segment *next;
    uint64_t due; /* CLOCK_MONOTONIC ns */
    size_t len, off;
    int eof; /* the sender closed: shut the receiver's write side when due */
    char data[];
};

struct link;

struct direction {
    struct link *owner;
    int from, to;
    struct segment *head, *tail;
    int done; /* EOF delivered */
};

struct link {
    struct link *prev, *next;
    struct direction up, down; /* client -> server, server -> client */
    int client, server;
    int dead; /* a socket failed: dropped after the current batch of events */
};

static struct link *links;
static uint64_t delay_ns;
static int epfd, timer;
static volatile sig_atomic_t stopping;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what) {
    perror(what);
    exit(1);
}

static void nodelay(int fd) {
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

static void free_segments(struct direction *d) {
    while (d->head) {
        struct segment *s = d->head;
        d->head = s->next;
        free(s);
    }
}

static void drop(struct link *l) {
    free_segments(&l->up);
    free_segments(&l->down);
    close(l->client);
    close(l->server);
    if (l->prev)
        l->prev->next = l->next;
    else
        links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    free(l);
}

static void arm(void) {
    uint64_t due = 0;
    for (struct link *l = links; l; l = l->next) {
        if (l->up.head && (!due || l->up.head->due < due))
            due = l->up.head->due;
        if (l->down.head && (!due || l->down.head->due < due))
            due = l->down.head->due;
    }
    struct itimerspec spec = {0};
    if (due) {
        spec.it_value.tv_sec = (time_t)(due / 1000000000u);
        spec.it_value.tv_nsec = (long)(due % 1000000000u);
    }
    if (timerfd_settime(timer, TFD_TIMER_ABSTIME, &spec, NULL) < 0)
        die("timerfd_settime");
}

/* Read what `d->from` has; 0 when the link is still up, -1 when it must be dropped. */
static int take(struct direction *d) {
    static char buffer[CHUNK];
    ssize_t n = recv(d->from, buffer, CHUNK, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n < 0)
        return -1;
    struct segment *s = malloc(sizeof *s + (size_t)n); /* what arrived, not a whole chunk */
    if (!s)
        die("malloc");
    memcpy(s->data, buffer, (size_t)n);
    s->next = NULL;
    s->due = now_ns() + delay_ns;
    s->len = (size_t)n;
    s->off = 0;
    s->eof = n == 0;
    if (s->eof) /* nothing more to read from this side */
        epoll_ctl(epfd, EPOLL_CTL_DEL, d->from, NULL);
    if (d->tail)
        d->tail->next = s;
    else
        d->head = s;
    d->tail = s;
    return 0;
}

/* Deliver what is due; -1 when the link must be dropped. */
static int deliver(struct direction *d, uint64_t now) {
    while (d->head && d->head->due <= now) {
        struct segment *s = d->head;
        if (s->eof) {
            shutdown(d->to, SHUT_WR);
            d->done = 1;
        } else {
            while (s->off < s->len) {
                /* a blocking write: a receiver that does not read stalls the link */
                ssize_t n = send(d->to, s->data + s->off, s->len - s->off, MSG_NOSIGNAL);
                if (n < 0 && errno == EINTR)
                    continue;
                if (n < 0)
                    return -1;
                s->off += (size_t)n;
            }
        }
        d->head = s->next;
        if (!d->head)
            d->tail = NULL;
        free(s);
    }
    return 0;
}

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s LISTEN_PORT TARGET_HOST TARGET_PORT DELAY_MICROSECONDS\n",
                argv[0]);
        return 2;
    }
    delay_ns = strtoull(argv[4], NULL, 10) * 1000u;
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *target;
    int rc = getaddrinfo(argv[2], argv[3], &hints, &target);
    if (rc) {
        fprintf(stderr, "%s: %s\n", argv[2], gai_strerror(rc));
        return 1;
    }
    int listener = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(listener, (struct sockaddr *)&addr, sizeof addr) < 0)
        die("bind");
    if (listen(listener, 512) < 0)
        die("listen");
    socklen_t len = sizeof addr;
    getsockname(listener, (struct sockaddr *)&addr, &len);
    printf("%d\n", ntohs(addr.sin_port));
    fflush(stdout);

    epfd = epoll_create1(0);
    timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK);
    if (epfd < 0 || timer < 0)
        die("epoll/timerfd");
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};
    epoll_ctl(epfd, EPOLL_CTL_ADD, listener, &ev);
    ev.data.ptr = &timer;
    epoll_ctl(epfd, EPOLL_CTL_ADD, timer, &ev);

    struct epoll_event events[MAX_EVENTS];
    while (!stopping) {
        int n = epoll_wait(epfd, events, MAX_EVENTS, -1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            void *tag = events[i].data.ptr;
            if (tag == NULL) { /* new client: connect it to the target */
                int client;
                while ((client = accept4(listener, NULL, NULL, 0)) >= 0) {
                    int server = socket(target->ai_family, SOCK_STREAM, 0);
                    if (server < 0 || connect(server, target->ai_addr, target->ai_addrlen) < 0) {
                        if (server >= 0)
                            close(server);
                        close(client);
                        continue;
                    }
                    nodelay(client);
                    nodelay(server);
                    struct link *l = calloc(1, sizeof *l);
                    l->client = client;
                    l->server = server;
                    l->up = (struct direction){.owner = l, .from = client, .to = server};
                    l->down = (struct direction){.owner = l, .from = server, .to = client};
                    l->next = links;
                    if (links)
                        links->prev = l;
                    links = l;
                    struct epoll_event e = {.events = EPOLLIN, .data.ptr = &l->up};
                    epoll_ctl(epfd, EPOLL_CTL_ADD, client, &e);
                    e.data.ptr = &l->down;
                    epoll_ctl(epfd, EPOLL_CTL_ADD, server, &e);
                }
            } else if (tag == &timer) {
                uint64_t ticks;
                (void)!read(timer, &ticks, sizeof ticks);
            } else {
                struct direction *d = tag;
                if (!d->owner->dead && take(d) < 0)
                    d->owner->dead = 1;
            }
        }
        uint64_t now = now_ns();
        for (struct link *l = links, *next; l; l = next) {
            next = l->next;
            if (l->dead || deliver(&l->up, now) < 0 || deliver(&l->down, now) < 0 ||
                (l->up.done && l->down.done))
                drop(l);
        }
        arm();
    }
    return 0;
}

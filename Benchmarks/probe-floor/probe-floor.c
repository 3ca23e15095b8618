// The floor under an HTTP probe's CPU: a C program making the same probes as crowsnest's prober and
// blackbox_exporter in Benchmarks/probe-cpu.sh (a new TCP connection per probe, one GET, the answer read to
// the end, close) with nothing else: a non-blocking socket, epoll, one thread, paced with nanosleep.
//   cc -O2 -o probe-floor probe-floor.c && ./probe-floor PORT COUNT RATE
// Prints the process's CPU (getrusage: user + system) per 1,000 probes. IPv4 loopback only.
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return usage.ru_utime.tv_sec + usage.ru_stime.tv_sec + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: probe-floor PORT COUNT RATE\n");
        return 2;
    }
    int port = atoi(argv[1]), count = atoi(argv[2]), rate = atoi(argv[3]);
    if (port <= 0 || count <= 0 || rate <= 0) {
        fprintf(stderr, "probe-floor: PORT, COUNT and RATE must be positive numbers\n");
        return 2;
    }
    int poll_fd = epoll_create1(EPOLL_CLOEXEC);
    struct sockaddr_in address = {0};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    inet_pton(AF_INET, "127.0.0.1", &address.sin_addr);
    const char *request = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: probe-floor\r\nConnection: close\r\n\r\n";
    char buffer[65536];
    int ok = 0;
    double start = cpu_seconds();
    for (int i = 0; i < count; i++) {
        struct timespec pause = {0, 1000000000L / rate};
        nanosleep(&pause, NULL);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        int connected = connect(fd, (struct sockaddr *)&address, sizeof address);
        struct epoll_event event = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP | EPOLLET, .data.fd = fd};
        epoll_ctl(poll_fd, EPOLL_CTL_ADD, fd, &event);
        if (connected < 0 && errno == EINPROGRESS) epoll_wait(poll_fd, &event, 1, 5000);
        int received = 0;
        if (send(fd, request, strlen(request), MSG_NOSIGNAL) > 0) {
            for (;;) {
                ssize_t n = recv(fd, buffer, sizeof buffer, 0);
                if (n > 0) { received += n; continue; }
                if (n < 0 && errno == EAGAIN && epoll_wait(poll_fd, &event, 1, 5000) > 0) continue;
                break;
            }
        }
        close(fd);
        if (received > 0) ok++;
    }
    double used = cpu_seconds() - start;
    printf("C floor: %d probes at %d/s, %d failed; CPU %.3f s = %.3f s per 1,000 probes\n", count, rate, count - ok,
           used, used / count * 1000);
    return ok == count ? 0 : 1;
}

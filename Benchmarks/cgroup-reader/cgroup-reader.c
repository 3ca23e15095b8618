// The cost floor of what the agent samples: reads the same cgroup and /proc files the agent reads, sweep after
// sweep, and reports its own CPU time per container per sweep. Benchmarks/agent-cpu.sh runs it beside the agent.
//
//   cgroup-reader MODE FILE-LIST SWEEPS INTERVAL-MS
//
// MODE is `keep` (every file opened once, then read with pread from offset 0 each sweep: what the agent aims at)
// or `reopen` (open, read, close every file every sweep: what a naive collector does). FILE-LIST holds one line
// per unit: `host PATH...` (host files), `statvfs PATH...` (mountpoints measured with statvfs) and
// `container PATH...` (one container's files). Each file's bytes are parsed the way the agent parses them: every
// decimal number in it is decoded and summed (the sum is printed so the work cannot be optimised away).
// CPU is getrusage(RUSAGE_SELF) user + system, from after the first sweep (which opens the kept files) to the end.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

enum kind { HOST, STATVFS, CONTAINER };

struct file {
    char *path;
    int fd;
};

struct unit {
    enum kind kind;
    struct file *files;
    int count;
};

static struct unit *units;
static int unit_count, container_count;
static int keep_open;
static uint64_t checksum;

static void die(const char *message, const char *detail) {
    fprintf(stderr, "cgroup-reader: %s%s%s\n", message, detail ? ": " : "", detail ? detail : "");
    exit(2);
}

static void parse_numbers(const unsigned char *bytes, ssize_t length) {
    uint64_t value = 0;
    int in_number = 0;
    for (ssize_t i = 0; i < length; i++) {
        unsigned digit = (unsigned)bytes[i] - '0';
        if (digit < 10) {
            value = value * 10 + digit;
            in_number = 1;
        } else if (in_number) {
            checksum += value;
            value = 0;
            in_number = 0;
        }
    }
    if (in_number) checksum += value;
}

static void read_file(struct file *file) {
    unsigned char buffer[8192];
    ssize_t n;
    if (keep_open) {
        if (file->fd < 0) file->fd = open(file->path, O_RDONLY | O_CLOEXEC);
        if (file->fd < 0) return;  // a file this kernel does not have: the agent reads it as 0 too
        n = pread(file->fd, buffer, sizeof buffer, 0);
    } else {
        int fd = open(file->path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) return;
        n = read(fd, buffer, sizeof buffer);
        close(fd);
    }
    if (n > 0) parse_numbers(buffer, n);
}

static void sweep(void) {
    for (int u = 0; u < unit_count; u++) {
        struct unit *unit = &units[u];
        for (int f = 0; f < unit->count; f++) {
            if (unit->kind == STATVFS) {
                struct statvfs info;
                if (statvfs(unit->files[f].path, &info) == 0) checksum += info.f_bavail;
            } else {
                read_file(&unit->files[f]);
            }
        }
    }
}

static void load(const char *list_path) {
    FILE *list = fopen(list_path, "r");
    if (!list) die("cannot open the file list", list_path);
    char *line = NULL;
    size_t capacity = 0;
    while (getline(&line, &capacity, list) > 0) {
        char *save = NULL;
        char *word = strtok_r(line, " \t\n", &save);
        if (!word) continue;
        struct unit unit = {0};
        if (strcmp(word, "host") == 0) unit.kind = HOST;
        else if (strcmp(word, "statvfs") == 0) unit.kind = STATVFS;
        else if (strcmp(word, "container") == 0) unit.kind = CONTAINER, container_count++;
        else die("a line must start with host, statvfs or container, not", word);
        while ((word = strtok_r(NULL, " \t\n", &save))) {
            unit.files = realloc(unit.files, sizeof(struct file) * (unit.count + 1));
            unit.files[unit.count++] = (struct file){strdup(word), -1};
        }
        units = realloc(units, sizeof(struct unit) * (unit_count + 1));
        units[unit_count++] = unit;
    }
    free(line);
    fclose(list);
    if (container_count == 0) die("the file list names no container", list_path);
}

static double cpu_microseconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) * 1e6 + usage.ru_utime.tv_usec + usage.ru_stime.tv_usec;
}

int main(int argc, char **argv) {
    if (argc != 5) die("usage: cgroup-reader keep|reopen FILE-LIST SWEEPS INTERVAL-MS", NULL);
    if (strcmp(argv[1], "keep") == 0) keep_open = 1;
    else if (strcmp(argv[1], "reopen") != 0) die("the mode is keep or reopen, not", argv[1]);
    load(argv[2]);
    long sweeps = strtol(argv[3], NULL, 10);
    long interval_ms = strtol(argv[4], NULL, 10);
    if (sweeps < 1 || interval_ms < 0) die("SWEEPS must be at least 1 and INTERVAL-MS at least 0", NULL);

    sweep();  // opens the kept files; not counted
    double start = cpu_microseconds();
    struct timespec pause = {interval_ms / 1000, (interval_ms % 1000) * 1000000L};
    for (long s = 0; s < sweeps; s++) {
        if (interval_ms > 0) nanosleep(&pause, NULL);
        sweep();
    }
    double spent = cpu_microseconds() - start;
    printf("mode=%s containers=%d sweeps=%ld cpu_us=%.0f us_per_container_per_sweep=%.2f checksum=%llu\n", argv[1],
           container_count, sweeps, spent, spent / sweeps / container_count, (unsigned long long)checksum);
    return 0;
}

/*
 * Integration: scripts/myloware.service (runtime.md §8) passes `systemd-analyze verify` without a
 * warning (skipped when systemd-analyze is absent), has the options the spec asks for, and the
 * settings it passes are valid for `myloware config check`.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "support/harness.h"

#define UNIT MYLOWARE_SRCDIR "/scripts/myloware.service"

static char *read_all(const char *path) {
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f, "cannot open %s", path);
    static char text[1 << 16];
    size_t n = fread(text, 1, sizeof text - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

/* True when the unit has this exact line. */
static bool has_line(const char *text, const char *line) {
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p += n)
        if ((p == text || p[-1] == '\n') && (p[n] == '\n' || p[n] == '\0'))
            return true;
    return false;
}

Test(service, unit_has_the_required_options) {
    const char *u = read_all(UNIT);
    cr_assert(has_line(u, "Type=simple") || has_line(u, "Type=notify"));
    cr_assert(has_line(u, "Restart=on-failure"));
    cr_assert(has_line(u, "DynamicUser=yes") || strstr(u, "\nUser="),
              "DynamicUser or a dedicated user");
    cr_assert(has_line(u, "StateDirectory=myloware"));
    cr_assert(has_line(u, "KillSignal=SIGTERM"), "SIGTERM drains (runtime.md)");
    static const char *hardening[] = {"NoNewPrivileges=yes", "ProtectSystem=strict",
                                      "ProtectHome=yes", "PrivateTmp=yes",
                                      "CapabilityBoundingSet="};
    for (size_t i = 0; i < sizeof hardening / sizeof hardening[0]; i++)
        cr_assert(has_line(u, hardening[i]), "%s", hardening[i]);
    cr_assert(has_line(u, "ExecStart=/usr/local/bin/myloware serve"));
}

Test(service, unit_settings_pass_config_check) {
    const char *u = read_all(UNIT);
    static char lines[64][256];
    const char *env[65];
    int n = 0;
    for (const char *p = u; (p = strstr(p, "\nEnvironment=")) && n < 64; p++) {
        const char *v = p + 13, *e = strchr(v, '\n');
        snprintf(lines[n], sizeof lines[n], "%.*s", (int)(e ? e - v : (long)strlen(v)), v);
        env[n] = lines[n];
        n++;
    }
    env[n] = NULL;
    cr_assert_geq(n, 3, "the unit sets the database, the media dir and the address");
    static char out[1 << 14];
    const char *check[] = {"config", "check", NULL};
    cr_assert_eq(run_cmd(check, env, out, sizeof out), 0,
                 "config check with the unit's settings: %s", out);
    bool db = false;
    for (int i = 0; i < n; i++)
        db |= strncmp(env[i], "DATABASE_URL=sqlite:/var/lib/myloware/", 38) == 0;
    cr_assert(db, "the database lives in the StateDirectory");
}

Test(service, systemd_analyze_verify_is_clean) {
    if (system("command -v systemd-analyze >/dev/null 2>&1") != 0)
        cr_skip_test("systemd-analyze is not installed");
    /* the unit as installed, with ExecStart pointing at the binary under test (verify checks
     * that the command exists) */
    char dir[] = "/tmp/myloware-unit-XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[300];
    snprintf(path, sizeof path, "%s/myloware.service", dir);
    const char *bin = getenv("MYLOWARE_BIN");
    cr_assert_not_null(bin, "MYLOWARE_BIN is set by make test");
    char cmd[1200];
    snprintf(cmd, sizeof cmd,
             "sed 's|^ExecStart=/usr/local/bin/myloware |ExecStart=%s |' '%s' > '%s'", bin, UNIT,
             path);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "systemd-analyze verify '%s' 2>&1", path);
    FILE *p = popen(cmd, "r");
    cr_assert_not_null(p);
    static char out[1 << 14];
    size_t k = fread(out, 1, sizeof out - 1, p);
    out[k] = '\0';
    int st = pclose(p);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "systemd-analyze verify failed:\n%s", out);
    cr_assert_null(strstr(out, "myloware.service"), "systemd-analyze verify warned:\n%s", out);
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

/* store: backend choice and the backend-neutral parts (the migration list). */
#include "db/store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/embed.h"
#include "core/err.h"

extern const struct store_ops store_sqlite_ops;

int store_open(const config_t *cfg, store_t **out, buf_t *err) {
    const char *url = config_str(cfg, S_DATABASE_URL);
    if (strncmp(url, "sqlite:", 7) == 0)
        return store_sqlite_ops.open(cfg, out, err);
    buf_puts(err, "DATABASE_URL: no backend for this URL in this build");
    return ERR_INVAL;
}

int store_migrate(store_t *s, int *from, int *to, buf_t *err) { return s->ops->migrate(s, from, to, err); }
int store_schema_version(store_t *s, int *out) { return s->ops->schema_version(s, out); }
int store_probe(store_t *s, buf_t *err) { return s->ops->probe(s, err); }
const char *store_backend(const store_t *s) { return s->ops->name; }

void store_close(store_t *s) {
    if (s)
        s->ops->close(s);
}

int store_migrations(struct migration *out, int max) {
    static const char tag[] = "-- migration ";
    int n = 0;
    const char *p = embed_schema_sql;
    while ((p = strstr(p, tag)) != NULL) {
        if (p != embed_schema_sql && p[-1] != '\n') {
            p += sizeof tag - 1;
            continue;
        }
        const char *line_end = strchr(p, '\n');
        if (!line_end)
            line_end = p + strlen(p);
        int v = atoi(p + sizeof tag - 1);
        const char *colon = memchr(p, ':', (size_t)(line_end - p));
        if (n < max) {
            struct migration *m = &out[n];
            m->version = v;
            int dlen = colon ? (int)(line_end - colon) - 2 : 0;
            snprintf(m->description, sizeof m->description, "%.*s", dlen > 0 ? dlen : 0,
                     dlen > 0 ? colon + 2 : "");
            m->sql = line_end;
            const char *next = strstr(line_end, "\n-- migration ");
            m->len = next ? (size_t)(next - line_end) : strlen(line_end);
        }
        n++;
        p = line_end;
    }
    return n;
}

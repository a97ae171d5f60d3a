/* err: maps the ERR_MAP codes to HTTP statuses and API error codes. */
#include "core/err.h"

#include <stddef.h>

struct err_row {
    int err;
    int status;
    const char *code;
    const char *name;
};

static const struct err_row rows[] = {
#define X(name, val, status, code) {val, status, code, "ERR_" #name},
    ERR_MAP(X)
#undef X
};

static const struct err_row *find(int err) {
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].err == err)
            return &rows[i];
    return NULL;
}

int err_http_status(int err) {
    const struct err_row *r = find(err);
    return r ? r->status : 500;
}

const char *err_code_name(int err) {
    const struct err_row *r = find(err);
    return r ? r->code : "internal_error";
}

const char *err_name(int err) {
    const struct err_row *r = find(err);
    return r ? r->name : "ERR_UNKNOWN";
}

const char *err_code_for_status(int status) {
    /* The first row with this status is the canonical one (ERR_MAP order). */
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (rows[i].status == status && rows[i].err != ERR_OK)
            return rows[i].code;
    return status >= 500 ? "internal_error" : "bad_request";
}

/* client: blocking libcurl requests for the client commands. Command-line processes only. */
#include "cli/client.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/err.h"

static size_t on_data(char *p, size_t size, size_t n, void *ud) {
    buf_t *b = ud;
    size_t len = size * n;
    return buf_append(b, p, len) == 0 ? len : 0; /* 0 stops the transfer: over the cap */
}

int cli_request(const config_t *cfg, const char *method, const char *path, const char *body,
                struct cli_resp *out, char *err, size_t errcap) {
    const char *base = config_str(cfg, S_MYLOWARE_URL);
    const char *key = config_str(cfg, S_MYLOWARE_API_KEY);
    if (!*key)
        key = config_str(cfg, S_API_KEY);
    size_t blen = strlen(base);
    while (blen > 0 && base[blen - 1] == '/')
        blen--;
    buf_t url, hdr, resp;
    buf_init(&url, 8192);
    buf_init(&hdr, 4096);
    buf_init(&resp, CLI_MAX_BODY);
    int rc = ERR_IO;
    CURL *c = NULL;
    struct curl_slist *headers = NULL;
    if (buf_append(&url, base, blen) || buf_puts(&url, path) || buf_puts(&hdr, "X-API-Key: ") ||
        buf_puts(&hdr, key)) {
        snprintf(err, errcap, "the URL or the key is too long");
        goto out;
    }
    c = curl_easy_init();
    if (!c) {
        snprintf(err, errcap, "cannot start libcurl");
        goto out;
    }
    headers = curl_slist_append(headers, hdr.data);
    headers = curl_slist_append(headers, "Accept: application/json");
    if (body)
        headers = curl_slist_append(headers, "Content-Type: application/json");
    char cerr[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(c, CURLOPT_URL, url.data);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, cerr);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 60000L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    } else if (strcmp(method, "POST") == 0) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, 0L);
    }
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        /* not the URL itself: it may hold credentials (user:pass@) */
        snprintf(err, errcap, "cannot reach the server (MYLOWARE_URL): %s",
                 cc == CURLE_WRITE_ERROR ? "the answer is too big"
                                         : (cerr[0] ? cerr : curl_easy_strerror(cc)));
        goto out;
    }
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    out->status = status;
    out->body = buf_steal(&resp, &out->len);
    json_error_t je;
    out->json = json_loadb(out->body, out->len, 0, &je);
    rc = 0;
out:
    curl_slist_free_all(headers);
    if (c)
        curl_easy_cleanup(c);
    buf_release(&url);
    buf_release(&hdr);
    buf_release(&resp);
    return rc;
}

void cli_resp_release(struct cli_resp *r) {
    free(r->body);
    json_decref(r->json);
    memset(r, 0, sizeof *r);
}

bool cli_query_add(char *path, size_t cap, const char *name, const char *value) {
    char *esc = curl_easy_escape(NULL, value, 0);
    if (!esc)
        return false;
    size_t len = strlen(path);
    int n = snprintf(path + len, cap - len, "%s%s=%s", strchr(path, '?') ? "&" : "?", name, esc);
    curl_free(esc);
    return n > 0 && (size_t)n < cap - len;
}

bool cli_id_ok(const char *s) {
    size_t n = strlen(s);
    if (n < 1 || n > 64)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return false;
    }
    return !(n <= 2 && s[0] == '.'); /* "." and ".." would change the path */
}

int cli_check(const char *cmd, const struct cli_resp *r) {
    if (r->status >= 200 && r->status < 300)
        return CLI_OK;
    const char *detail = r->json ? json_string_value(json_object_get(r->json, "detail")) : NULL;
    json_t *field = r->json ? json_array_get(json_object_get(r->json, "fields"), 0) : NULL;
    const char *fname = json_string_value(json_object_get(field, "field"));
    const char *fmsg = json_string_value(json_object_get(field, "message"));
    fprintf(stderr, "myloware %s: %s%s%s%s%s (HTTP %ld)\n", cmd,
            detail ? detail : "the server refused the request", fname ? ": " : "",
            fname ? fname : "", fmsg ? " " : "", fmsg ? fmsg : "", r->status);
    return CLI_FAIL;
}

int cli_call(const config_t *cfg, const char *cmd, const char *method, const char *path,
             const char *body, struct cli_resp *r) {
    char err[512];
    if (cli_request(cfg, method, path, body, r, err, sizeof err) != 0) {
        fprintf(stderr, "myloware %s: %s\n", cmd, err);
        return CLI_FAIL;
    }
    int rc = cli_check(cmd, r);
    if (rc == CLI_OK && !r->json) {
        fprintf(stderr, "myloware %s: the server's answer is not JSON\n", cmd);
        rc = CLI_FAIL;
    }
    if (rc != CLI_OK)
        cli_resp_release(r);
    return rc;
}

int cli_list(const config_t *cfg, const char *cmd, int argc, char **argv,
             const char *const opts[][2], size_t n, char *path, size_t cap, bool *as_json,
             struct cli_resp *r) {
    *as_json = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0) {
            *as_json = true;
            continue;
        }
        const char *v = NULL;
        size_t k;
        for (k = 0; k < n && !v; k++)
            v = cli_opt(argc, argv, &i, opts[k][0]);
        if (!v)
            return cli_usage(cmd, "unknown option", argv[i]);
        if (!cli_query_add(path, cap, opts[k - 1][1], v))
            return cli_usage(cmd, "option value too long", opts[k - 1][0]);
    }
    return cli_call(cfg, cmd, "GET", path, NULL, r);
}

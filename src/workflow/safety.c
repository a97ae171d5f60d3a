/* safety: whole-word blocklist matching (see safety.h). */
#include "workflow/safety.h"

#include <stdio.h>
#include <string.h>

#define MAX_ENTRY_WORDS 8
#define MAX_WORD 64

static bool word_char(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Next word at or after *p in [p, end): sets *ws, *wn; false at the end. */
static bool next_word(const char **p, const char *end, const char **ws, size_t *wn) {
    const char *s = *p;
    while (s < end && !word_char((unsigned char)*s))
        s++;
    if (s >= end)
        return false;
    const char *e = s;
    while (e < end && word_char((unsigned char)*e))
        e++;
    *ws = s;
    *wn = (size_t)(e - s);
    *p = e;
    return true;
}

/* True when the text word equals the entry word, or the entry word plus one allowed suffix. */
static bool word_matches(const char *tw, size_t tn, const char *ew, size_t en) {
    static const char *const suffixes[] = {"", "s", "es", "ed", "ing", "er", "ers"};
    if (tn < en)
        return false;
    for (size_t i = 0; i < en; i++)
        if (lower(tw[i]) != lower(ew[i]))
            return false;
    for (size_t k = 0; k < sizeof suffixes / sizeof suffixes[0]; k++) {
        size_t sn = strlen(suffixes[k]);
        if (en + sn != tn)
            continue;
        bool same = true;
        for (size_t i = 0; i < sn && same; i++)
            same = lower(tw[en + i]) == suffixes[k][i];
        if (same)
            return true;
    }
    return false;
}

static bool entry_matches(const char *text, const char *es, const char *ee) {
    const char *ew[MAX_ENTRY_WORDS];
    size_t en[MAX_ENTRY_WORDS];
    int nw = 0;
    const char *p = es, *w;
    size_t n;
    while (nw < MAX_ENTRY_WORDS && next_word(&p, ee, &w, &n)) {
        ew[nw] = w;
        en[nw] = n;
        nw++;
    }
    if (nw == 0)
        return false;
    const char *tend = text + strlen(text);
    const char *tp = text;
    const char *tw;
    size_t tn;
    while (next_word(&tp, tend, &tw, &tn)) {
        if (!word_matches(tw, tn, ew[0], en[0]))
            continue;
        const char *q = tp;
        int k = 1;
        for (; k < nw; k++) {
            const char *qw;
            size_t qn;
            if (!next_word(&q, tend, &qw, &qn) || !word_matches(qw, qn, ew[k], en[k]))
                break;
        }
        if (k == nw)
            return true;
    }
    return false;
}

static void normalise(const char *es, const char *ee, char *out, size_t cap) {
    size_t o = 0;
    const char *p = es, *w;
    size_t n;
    if (!cap)
        return;
    while (next_word(&p, ee, &w, &n)) {
        if (o && o + 1 < cap)
            out[o++] = ' ';
        for (size_t i = 0; i < n && o + 1 < cap; i++)
            out[o++] = lower(w[i]);
    }
    out[o] = '\0';
}

bool safety_blocked(const char *blocklist, const char *text, char *entry, size_t cap) {
    if (!blocklist || !text)
        return false;
    const char *p = blocklist;
    while (*p) {
        const char *comma = strchr(p, ',');
        const char *e = comma ? comma : p + strlen(p);
        if (entry_matches(text, p, e)) {
            if (entry)
                normalise(p, e, entry, cap);
            return true;
        }
        if (!comma)
            break;
        p = comma + 1;
    }
    return false;
}

void safety_reason(const char *entry, char *out, size_t cap) {
    snprintf(out, cap, "matched_keyword:%s", entry);
}

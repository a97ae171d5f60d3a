/*
 * media/ff: loading the FFmpeg libraries on first use (see ff.h). Any thread; the one load is
 * serialised by pthread_once, and ff_api is written only inside it.
 */
#define FF_NO_REDIRECT
#include "media/ff.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "core/err.h"

ff_api_t ff_api;

#define FF_STR2(x) #x
#define FF_STR(x) FF_STR2(x)

/* The sonames of the libraries the headers describe (the ABI this file was compiled for). */
static const char *const sonames[FF_NLIBS] = {
    [FF_AVUTIL] = "libavutil.so." FF_STR(LIBAVUTIL_VERSION_MAJOR),
    [FF_SWRESAMPLE] = "libswresample.so." FF_STR(LIBSWRESAMPLE_VERSION_MAJOR),
    [FF_SWSCALE] = "libswscale.so." FF_STR(LIBSWSCALE_VERSION_MAJOR),
    [FF_AVCODEC] = "libavcodec.so." FF_STR(LIBAVCODEC_VERSION_MAJOR),
    [FF_AVFORMAT] = "libavformat.so." FF_STR(LIBAVFORMAT_VERSION_MAJOR),
    [FF_AVFILTER] = "libavfilter.so." FF_STR(LIBAVFILTER_VERSION_MAJOR),
};

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static int load_rc;
static char load_err[512]; /* the reason of a failed load, given to every caller */

const char *ff_soname(enum ff_lib lib) { return lib >= 0 && lib < FF_NLIBS ? sonames[lib] : "?"; }

/* A failed load leaves the libraries it had opened loaded: the failure is final for the process
 * (pthread_once; every caller gets load_err), and unloading them would gain nothing
 * (LeakSanitizer would report what their constructors allocated as leaks of an "unknown
 * module"). */
static void load(void) {
    void *h[FF_NLIBS] = {0};
    for (int i = 0; i < FF_NLIBS; i++) {
        /* Never closed once loaded: the functions are used until exit. */
        h[i] = dlopen(sonames[i], RTLD_NOW | RTLD_LOCAL);
        if (!h[i]) {
            const char *why = dlerror();
            snprintf(load_err, sizeof load_err, "cannot load the FFmpeg library %s: %s", sonames[i],
                     why ? why : "unknown error");
            load_rc = ERR_INTERNAL;
            return;
        }
    }
    ff_api_t api;
    memset(&api, 0, sizeof api);
#define FF_RESOLVE(lib, name)                                                                      \
    do {                                                                                           \
        void *p = dlsym(h[lib], #name);                                                            \
        if (!p) {                                                                                  \
            snprintf(load_err, sizeof load_err,                                                    \
                     "cannot load the FFmpeg library %s: it has no function %s", sonames[lib],     \
                     #name);                                                                       \
            load_rc = ERR_INTERNAL;                                                                \
            return;                                                                                \
        }                                                                                          \
        memcpy(&api.name, &p, sizeof p);                                                           \
    } while (0);
    FF_FUNCS(FF_RESOLVE)
#undef FF_RESOLVE
    ff_api = api;
}

const char *ff_error(void) {
    pthread_once(&load_once, load);
    return load_err;
}

int ff_load(buf_t *err) {
    pthread_once(&load_once, load);
    if (load_rc && err) {
        if (err->len)
            buf_puts(err, "; ");
        buf_puts(err, load_err);
    }
    return load_rc;
}

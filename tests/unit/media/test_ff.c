/* media/ff: the FFmpeg libraries loaded with dlopen, every function the media code calls resolved.
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#define FF_NO_REDIRECT /* to read ff_api's fields by name */
#include "media/ff.h"

Test(ff, loads_every_library_and_resolves_every_function) {
    buf_t err;
    buf_init(&err, 1024);
    cr_assert_eq(ff_load(&err), 0, "%s", err.data ? err.data : "");
    cr_expect_eq(err.len, 0u, "nothing appended on success");
    cr_expect_str_eq(ff_error(), "");
    cr_assert_eq(ff_load(&err), 0, "a second call gives the first result");
    buf_release(&err);
    size_t n = 0;
#define CHECK(lib, name)                                                                           \
    cr_expect(ff_api.name != NULL, "%s from %s", #name, ff_soname(lib));                           \
    n++;
    FF_FUNCS(CHECK)
#undef CHECK
    cr_expect_gt(n, 50u);
    /* the pointers are the libraries' own functions: they report the versions the headers describe
     */
    cr_expect_eq(ff_api.avcodec_version() >> 16, (unsigned)LIBAVCODEC_VERSION_MAJOR);
    cr_expect_eq(ff_api.avformat_version() >> 16, (unsigned)LIBAVFORMAT_VERSION_MAJOR);
    cr_expect_eq(ff_api.avutil_version() >> 16, (unsigned)LIBAVUTIL_VERSION_MAJOR);
    cr_expect_eq(ff_api.avfilter_version() >> 16, (unsigned)LIBAVFILTER_VERSION_MAJOR);
    cr_expect_eq(ff_api.swscale_version() >> 16, (unsigned)LIBSWSCALE_VERSION_MAJOR);
    cr_expect_eq(ff_api.swresample_version() >> 16, (unsigned)LIBSWRESAMPLE_VERSION_MAJOR);
    char why[AV_ERROR_MAX_STRING_SIZE] = "";
    cr_expect_eq(ff_api.av_strerror(AVERROR(ENOENT), why, sizeof why), 0);
    cr_expect_str_eq(why, "No such file or directory");
}

Test(ff, sonames_follow_the_headers) {
    char want[64];
    snprintf(want, sizeof want, "libavcodec.so.%d", LIBAVCODEC_VERSION_MAJOR);
    cr_expect_str_eq(ff_soname(FF_AVCODEC), want);
    snprintf(want, sizeof want, "libavfilter.so.%d", LIBAVFILTER_VERSION_MAJOR);
    cr_expect_str_eq(ff_soname(FF_AVFILTER), want);
    snprintf(want, sizeof want, "libswresample.so.%d", LIBSWRESAMPLE_VERSION_MAJOR);
    cr_expect_str_eq(ff_soname(FF_SWRESAMPLE), want);
    cr_expect_str_eq(ff_soname(FF_NLIBS), "?");
}

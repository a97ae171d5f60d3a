/*
 * media/ff: the FFmpeg libraries, loaded on first use (dlopen) instead of linked.
 *
 * The binary does not link libavformat and friends: mapping them (and their dozens of
 * dependencies: x265, librsvg, flite, gnutls, ...) at start costs ~40 MiB of resident shared
 * pages in a server that may never run a media job. The first media call loads them, once per
 * process (ff_load), by the sonames of the headers this was compiled against (e.g.
 * "libavcodec.so.59"), and resolves every function the media code calls.
 *
 * Every file of src/media/ that calls FFmpeg includes this header instead of the FFmpeg headers:
 * after the headers, each FFmpeg function name is #defined to its pointer in ff_api, so the code
 * reads as plain FFmpeg calls. A function called but missing from FF_FUNCS is a link error (the
 * binary has no FFmpeg library to resolve it against), so the list cannot silently fall behind:
 * add the function to FF_FUNCS and to the #define block below, with the library it lives in.
 * Header-inline functions and macros that call library functions (av_err2str ->
 * av_make_error_string -> av_strerror, ...) would bypass the redirection: the link catches them
 * too.
 */
#ifndef MYLOWARE_MEDIA_FF_H
#define MYLOWARE_MEDIA_FF_H

#include <libavcodec/avcodec.h>
#include <libavfilter/avfilter.h>
#include <libavfilter/buffersink.h>
#include <libavfilter/buffersrc.h>
#include <libavformat/avformat.h>
#include <libavutil/channel_layout.h>
#include <libavutil/frame.h>
#include <libavutil/imgutils.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>

#include "core/buf.h"

/* The libraries, in load order (each after those it depends on). */
enum ff_lib {
    FF_AVUTIL,
    FF_SWRESAMPLE,
    FF_SWSCALE,
    FF_AVCODEC,
    FF_AVFORMAT,
    FF_AVFILTER,
    FF_NLIBS
};

/* X(library, function): every FFmpeg function the code calls. */
#define FF_FUNCS(X)                                                                                \
    X(FF_AVUTIL, av_channel_layout_compare)                                                        \
    X(FF_AVUTIL, av_channel_layout_copy)                                                           \
    X(FF_AVUTIL, av_channel_layout_default)                                                        \
    X(FF_AVUTIL, av_channel_layout_uninit)                                                         \
    X(FF_AVUTIL, av_dict_free)                                                                     \
    X(FF_AVUTIL, av_dict_set)                                                                      \
    X(FF_AVUTIL, av_dict_set_int)                                                                  \
    X(FF_AVUTIL, av_frame_alloc)                                                                   \
    X(FF_AVUTIL, av_frame_free)                                                                    \
    X(FF_AVUTIL, av_frame_get_buffer)                                                              \
    X(FF_AVUTIL, av_frame_make_writable)                                                           \
    X(FF_AVUTIL, av_frame_move_ref)                                                                \
    X(FF_AVUTIL, av_frame_ref)                                                                     \
    X(FF_AVUTIL, av_frame_unref)                                                                   \
    X(FF_AVUTIL, av_free)                                                                          \
    X(FF_AVUTIL, av_get_pix_fmt_name)                                                              \
    X(FF_AVUTIL, av_log_set_level)                                                                 \
    X(FF_AVUTIL, av_malloc_array)                                                                  \
    X(FF_AVUTIL, av_opt_set)                                                                       \
    X(FF_AVUTIL, av_pix_fmt_desc_get)                                                              \
    X(FF_AVUTIL, av_rescale)                                                                       \
    X(FF_AVUTIL, av_rescale_q)                                                                     \
    X(FF_AVUTIL, av_strdup)                                                                        \
    X(FF_AVUTIL, av_strerror)                                                                      \
    X(FF_AVUTIL, avutil_version)                                                                   \
    X(FF_SWRESAMPLE, swr_alloc_set_opts2)                                                          \
    X(FF_SWRESAMPLE, swr_convert)                                                                  \
    X(FF_SWRESAMPLE, swr_free)                                                                     \
    X(FF_SWRESAMPLE, swr_get_out_samples)                                                          \
    X(FF_SWRESAMPLE, swr_init)                                                                     \
    X(FF_SWRESAMPLE, swresample_version)                                                           \
    X(FF_SWSCALE, sws_freeContext)                                                                 \
    X(FF_SWSCALE, sws_getContext)                                                                  \
    X(FF_SWSCALE, sws_scale)                                                                       \
    X(FF_SWSCALE, swscale_version)                                                                 \
    X(FF_AVCODEC, av_packet_alloc)                                                                 \
    X(FF_AVCODEC, av_packet_free)                                                                  \
    X(FF_AVCODEC, av_packet_rescale_ts)                                                            \
    X(FF_AVCODEC, av_packet_unref)                                                                 \
    X(FF_AVCODEC, avcodec_alloc_context3)                                                          \
    X(FF_AVCODEC, avcodec_find_decoder)                                                            \
    X(FF_AVCODEC, avcodec_find_encoder)                                                            \
    X(FF_AVCODEC, avcodec_find_encoder_by_name)                                                    \
    X(FF_AVCODEC, avcodec_free_context)                                                            \
    X(FF_AVCODEC, avcodec_get_name)                                                                \
    X(FF_AVCODEC, avcodec_open2)                                                                   \
    X(FF_AVCODEC, avcodec_parameters_from_context)                                                 \
    X(FF_AVCODEC, avcodec_parameters_to_context)                                                   \
    X(FF_AVCODEC, avcodec_receive_frame)                                                           \
    X(FF_AVCODEC, avcodec_receive_packet)                                                          \
    X(FF_AVCODEC, avcodec_send_frame)                                                              \
    X(FF_AVCODEC, avcodec_send_packet)                                                             \
    X(FF_AVCODEC, avcodec_version)                                                                 \
    X(FF_AVFORMAT, av_find_best_stream)                                                            \
    X(FF_AVFORMAT, av_guess_format)                                                                \
    X(FF_AVFORMAT, av_interleaved_write_frame)                                                     \
    X(FF_AVFORMAT, av_probe_input_buffer2)                                                         \
    X(FF_AVFORMAT, av_read_frame)                                                                  \
    X(FF_AVFORMAT, av_seek_frame)                                                                  \
    X(FF_AVFORMAT, av_write_trailer)                                                               \
    X(FF_AVFORMAT, avformat_alloc_context)                                                         \
    X(FF_AVFORMAT, avformat_alloc_output_context2)                                                 \
    X(FF_AVFORMAT, avformat_close_input)                                                           \
    X(FF_AVFORMAT, avformat_find_stream_info)                                                      \
    X(FF_AVFORMAT, avformat_free_context)                                                          \
    X(FF_AVFORMAT, avformat_new_stream)                                                            \
    X(FF_AVFORMAT, avformat_open_input)                                                            \
    X(FF_AVFORMAT, avformat_version)                                                               \
    X(FF_AVFORMAT, avformat_write_header)                                                          \
    X(FF_AVFORMAT, avio_closep)                                                                    \
    X(FF_AVFORMAT, avio_open2)                                                                     \
    X(FF_AVFILTER, av_buffersink_get_frame)                                                        \
    X(FF_AVFILTER, av_buffersrc_add_frame_flags)                                                   \
    X(FF_AVFILTER, avfilter_get_by_name)                                                           \
    X(FF_AVFILTER, avfilter_graph_alloc)                                                           \
    X(FF_AVFILTER, avfilter_graph_alloc_filter)                                                    \
    X(FF_AVFILTER, avfilter_graph_config)                                                          \
    X(FF_AVFILTER, avfilter_graph_create_filter)                                                   \
    X(FF_AVFILTER, avfilter_graph_free)                                                            \
    X(FF_AVFILTER, avfilter_init_str)                                                              \
    X(FF_AVFILTER, avfilter_link)                                                                  \
    X(FF_AVFILTER, avfilter_version)

typedef struct ff_api {
#define FF_FIELD(lib, name) __typeof__(name) *name;
    FF_FUNCS(FF_FIELD)
#undef FF_FIELD
} ff_api_t;

/* Filled by ff_load; read-only afterwards. */
extern ff_api_t ff_api;

/*
 * Loads the libraries and resolves FF_FUNCS, once per process (later calls return the first
 * call's result). Returns 0, or ERR_INTERNAL with "cannot load the FFmpeg library
 * libavcodec.so.59: <dlerror>" (or "... has no function X") appended to err (may be NULL).
 * Blocking (maps the libraries: milliseconds): worker threads and the CLI, never the loop
 * thread. Any thread; thread-safe.
 */
int ff_load(buf_t *err);

/* After a failed ff_load: its reason ("cannot load ..."); "" otherwise. Any thread. */
const char *ff_error(void);

/* "libavcodec.so.59" for lib. Any thread. */
const char *ff_soname(enum ff_lib lib);

#ifndef FF_NO_REDIRECT
#define av_channel_layout_compare (ff_api.av_channel_layout_compare)
#define av_channel_layout_copy (ff_api.av_channel_layout_copy)
#define av_channel_layout_default (ff_api.av_channel_layout_default)
#define av_channel_layout_uninit (ff_api.av_channel_layout_uninit)
#define av_dict_free (ff_api.av_dict_free)
#define av_dict_set (ff_api.av_dict_set)
#define av_dict_set_int (ff_api.av_dict_set_int)
#define av_frame_alloc (ff_api.av_frame_alloc)
#define av_frame_free (ff_api.av_frame_free)
#define av_frame_get_buffer (ff_api.av_frame_get_buffer)
#define av_frame_make_writable (ff_api.av_frame_make_writable)
#define av_frame_move_ref (ff_api.av_frame_move_ref)
#define av_frame_ref (ff_api.av_frame_ref)
#define av_frame_unref (ff_api.av_frame_unref)
#define av_free (ff_api.av_free)
#define av_get_pix_fmt_name (ff_api.av_get_pix_fmt_name)
#define av_log_set_level (ff_api.av_log_set_level)
#define av_malloc_array (ff_api.av_malloc_array)
#define av_opt_set (ff_api.av_opt_set)
#define av_pix_fmt_desc_get (ff_api.av_pix_fmt_desc_get)
#define av_rescale (ff_api.av_rescale)
#define av_rescale_q (ff_api.av_rescale_q)
#define av_strdup (ff_api.av_strdup)
#define av_strerror (ff_api.av_strerror)
#define avutil_version (ff_api.avutil_version)
#define swr_alloc_set_opts2 (ff_api.swr_alloc_set_opts2)
#define swr_convert (ff_api.swr_convert)
#define swr_free (ff_api.swr_free)
#define swr_get_out_samples (ff_api.swr_get_out_samples)
#define swr_init (ff_api.swr_init)
#define swresample_version (ff_api.swresample_version)
#define sws_freeContext (ff_api.sws_freeContext)
#define sws_getContext (ff_api.sws_getContext)
#define sws_scale (ff_api.sws_scale)
#define swscale_version (ff_api.swscale_version)
#define av_packet_alloc (ff_api.av_packet_alloc)
#define av_packet_free (ff_api.av_packet_free)
#define av_packet_rescale_ts (ff_api.av_packet_rescale_ts)
#define av_packet_unref (ff_api.av_packet_unref)
#define avcodec_alloc_context3 (ff_api.avcodec_alloc_context3)
#define avcodec_find_decoder (ff_api.avcodec_find_decoder)
#define avcodec_find_encoder (ff_api.avcodec_find_encoder)
#define avcodec_find_encoder_by_name (ff_api.avcodec_find_encoder_by_name)
#define avcodec_free_context (ff_api.avcodec_free_context)
#define avcodec_get_name (ff_api.avcodec_get_name)
#define avcodec_open2 (ff_api.avcodec_open2)
#define avcodec_parameters_from_context (ff_api.avcodec_parameters_from_context)
#define avcodec_parameters_to_context (ff_api.avcodec_parameters_to_context)
#define avcodec_receive_frame (ff_api.avcodec_receive_frame)
#define avcodec_receive_packet (ff_api.avcodec_receive_packet)
#define avcodec_send_frame (ff_api.avcodec_send_frame)
#define avcodec_send_packet (ff_api.avcodec_send_packet)
#define avcodec_version (ff_api.avcodec_version)
#define av_find_best_stream (ff_api.av_find_best_stream)
#define av_guess_format (ff_api.av_guess_format)
#define av_interleaved_write_frame (ff_api.av_interleaved_write_frame)
#define av_probe_input_buffer2 (ff_api.av_probe_input_buffer2)
#define av_read_frame (ff_api.av_read_frame)
#define av_seek_frame (ff_api.av_seek_frame)
#define av_write_trailer (ff_api.av_write_trailer)
#define avformat_alloc_context (ff_api.avformat_alloc_context)
#define avformat_alloc_output_context2 (ff_api.avformat_alloc_output_context2)
#define avformat_close_input (ff_api.avformat_close_input)
#define avformat_find_stream_info (ff_api.avformat_find_stream_info)
#define avformat_free_context (ff_api.avformat_free_context)
#define avformat_new_stream (ff_api.avformat_new_stream)
#define avformat_open_input (ff_api.avformat_open_input)
#define avformat_version (ff_api.avformat_version)
#define avformat_write_header (ff_api.avformat_write_header)
#define avio_closep (ff_api.avio_closep)
#define avio_open2 (ff_api.avio_open2)
#define av_buffersink_get_frame (ff_api.av_buffersink_get_frame)
#define av_buffersrc_add_frame_flags (ff_api.av_buffersrc_add_frame_flags)
#define avfilter_get_by_name (ff_api.avfilter_get_by_name)
#define avfilter_graph_alloc (ff_api.avfilter_graph_alloc)
#define avfilter_graph_alloc_filter (ff_api.avfilter_graph_alloc_filter)
#define avfilter_graph_config (ff_api.avfilter_graph_config)
#define avfilter_graph_create_filter (ff_api.avfilter_graph_create_filter)
#define avfilter_graph_free (ff_api.avfilter_graph_free)
#define avfilter_init_str (ff_api.avfilter_init_str)
#define avfilter_link (ff_api.avfilter_link)
#define avfilter_version (ff_api.avfilter_version)
#endif

#endif

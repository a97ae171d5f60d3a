/*
 * settings: THE table of every setting (runtime.md §6). It drives parsing, validation,
 * `myloware config show`, the `--flag` names (PORT is --port) and the README table
 * (`myloware config table`; scripts/check-readme.sh fails when the README differs).
 *
 * X(ID, type, default, min, max, choices, flags, help)
 *   type    CT_STR, CT_INT (min..max), CT_NUM (min..max), CT_BOOL, CT_ENUM (choices, "|"),
 *           CT_RATE ("N/second|minute|hour")
 *   flags   CF_SECRET: never printed (config show prints ***); CF_LIST: comma list
 */
#ifndef MYLOWARE_CORE_SETTINGS_H
#define MYLOWARE_CORE_SETTINGS_H

#define SETTINGS(X)                                                                                \
    /* server */                                                                                   \
    X(HOST, CT_STR, "127.0.0.1", 0, 0, NULL, 0, "Address the HTTP server binds")                   \
    X(PORT, CT_INT, "8000", 0, 65535, NULL, 0, "HTTP port (0 picks a free port)")                  \
    X(ENVIRONMENT, CT_ENUM, "development", 0, 0, "development|production|test", 0,                 \
      "production refuses unsafe settings; test enables test-only job types")                      \
    X(PUBLIC_BASE_URL, CT_STR, "", 0, 0, NULL, 0,                                                  \
      "Absolute base URL for links given to providers (default http://HOST:PORT)")                 \
    X(LOG_LEVEL, CT_ENUM, "info", 0, 0, "debug|info|warn|error", 0, "Lowest level logged")         \
    X(LOG_FORMAT, CT_ENUM, "json", 0, 0, "json|text", 0,                                           \
      "json: one object per line; text: for people")                                               \
    X(MAX_BODY_BYTES, CT_INT, "1048576", 1024, 67108864, NULL, 0,                                  \
      "Largest request body (413 above)")                                                          \
    X(WEBHOOK_MAX_BODY_BYTES, CT_INT, "262144", 1024, 67108864, NULL, 0,                           \
      "Largest webhook body (413 above)")                                                          \
    X(HTTP_IDLE_TIMEOUT_MS, CT_INT, "60000", 100, 3600000, NULL, 0,                                \
      "Idle keep-alive connections are closed after this")                                         \
    X(HTTP_REQUEST_TIMEOUT_MS, CT_INT, "30000", 100, 3600000, NULL, 0,                             \
      "A request whose head or body is not complete by then gets 408")                             \
    X(HTTP_MAX_CONNECTIONS, CT_INT, "10000", 1, 1000000, NULL, 0,                                  \
      "Open connections above this are closed at once")                                            \
    X(SHUTDOWN_GRACE_S, CT_INT, "30", 0, 3600, NULL, 0,                                            \
      "On SIGTERM, time given to in-flight requests and running jobs")                             \
    X(HTTP_LOOP_SLICE_US, CT_INT, "100", 0, 100000, NULL, 0,                                       \
      "CPU time slice the loop thread asks of Linux >= 6.12 (lower HTTP p99 on busy CPUs; 0: the " \
      "kernel's default)")                                                                         \
    /* auth and limits */                                                                          \
    X(API_KEY, CT_STR, "dev-api-key", 0, 0, NULL, CF_SECRET, "API key for X-API-Key")              \
    X(API_KEYS, CT_STR, "", 0, 0, NULL, CF_SECRET | CF_LIST,                                       \
      "Comma list of accepted API keys (rotation); used with API_KEY when both are set")           \
    X(METRICS_TOKEN, CT_STR, "", 0, 0, NULL, CF_SECRET,                                            \
      "When set, /metrics needs this Bearer token")                                                \
    X(RUN_RATE_LIMIT, CT_RATE, "60/minute", 0, 0, NULL, 0, "Run starts per API key")               \
    X(APPROVE_RATE_LIMIT, CT_RATE, "120/minute", 0, 0, NULL, 0,                                    \
      "Approve, reject, resume and cancel per API key")                                            \
    X(PUBLIC_DEMO_RATE_LIMIT, CT_RATE, "10/minute", 0, 0, NULL, 0,                                 \
      "Public demo writes per client IP")                                                          \
    X(MAX_RUNS_LAST_24H, CT_INT, "1000", 0, 100000000, NULL, 0,                                    \
      "Run budget per 24 h (0 disables)")                                                          \
    X(ESTIMATED_COST_PER_RUN_USD, CT_NUM, "0.5", 0, 1000000, NULL, 0, "Cost charged per run")      \
    X(DAILY_COST_BUDGET_USD, CT_NUM, "500", 0, 1000000000, NULL, 0, "Daily cost budget")           \
    X(SAFETY_BLOCKLIST, CT_STR,                                                                    \
      "kill,bomb,terrorist,hate speech,murder,shoot,suicide,racial slur", 0, 0, NULL, CF_LIST,     \
      "Blocked words and phrases (whole words)")                                                   \
    X(SAFETY_PROVIDER, CT_ENUM, "off", 0, 0, "off|openai", 0, "Also ask the moderation API")       \
    X(SAFETY_TIMEOUT_MS, CT_INT, "5000", 100, 600000, NULL, 0, "Moderation answer deadline")       \
    /* storage of state */                                                                         \
    X(DATABASE_URL, CT_STR, "sqlite:./data/myloware.db", 0, 0, NULL, CF_SECRET_URL,                \
      "sqlite:PATH, or postgres://... with a WITH_POSTGRES=1 build")                               \
    X(DB_SYNC, CT_ENUM, "normal", 0, 0, "normal|full", 0,                                          \
      "normal survives a process crash; full also a power loss")                                   \
    /* queue and workers */                                                                        \
    X(JOB_LEASE_S, CT_INT, "30", 2, 3600, NULL, 0, "Job lease; renewed every third of it")         \
    X(JOB_RETRY_BASE_S, CT_NUM, "2", 0.01, 3600, NULL, 0, "First retry delay")                     \
    X(JOB_RETRY_MAX_S, CT_NUM, "300", 0.01, 86400, NULL, 0, "Longest retry delay")                 \
    X(JOB_MAX_ATTEMPTS, CT_INT, "5", 1, 100, NULL, 0, "Attempts per job before it is dead")        \
    X(JOB_RETENTION_HOURS, CT_INT, "168", 1, 87600, NULL, 0,                                       \
      "Finished jobs are deleted after this")                                                      \
    X(WORKER_CONCURRENCY, CT_INT, "0", 0, 256, NULL, 0, "Worker threads (0: the CPU count)")       \
    X(TRANSCODE_MAX_CONCURRENCY, CT_INT, "2", 1, 64, NULL, 0, "Media jobs at once")                \
    X(TRANSCODE_PRIORITY, CT_ENUM, "idle", 0, 0, "idle|low|normal", 0,                             \
      "CPU priority of media jobs: idle (SCHED_IDLE), low (nice 10) or normal")                    \
    X(PROVIDER_MAX_INFLIGHT, CT_INT, "8", 1, 1024, NULL, 0, "Requests in flight per provider")     \
    X(QUEUE_POLL_MS, CT_INT, "200", 10, 60000, NULL, 0,                                            \
      "How often the dispatcher looks for jobs it was not told about (other processes, retries)")  \
    X(QUEUE_LIMITER_MAX, CT_INT, "0", 0, 1000000, NULL, 0,                                         \
      "Provider jobs started per window (0: no limit)")                                            \
    X(QUEUE_LIMITER_DURATION_MS, CT_INT, "1000", 1, 86400000, NULL, 0, "The limiter's window")     \
    X(CIRCUIT_BREAKER_FAILURE_THRESHOLD, CT_INT, "5", 1, 1000, NULL, 0,                            \
      "Consecutive failures that open a provider's circuit")                                       \
    X(CIRCUIT_BREAKER_RECOVERY_TIMEOUT_S, CT_INT, "30", 1, 86400, NULL, 0,                         \
      "Open circuit turns half-open after this")                                                   \
    /* providers */                                                                                \
    X(PROVIDERS, CT_ENUM, "", 0, 0, "fake|real", 0,                                                \
      "Default mode of every provider (fake outside production, real in production)")              \
    X(LLM_PROVIDER, CT_ENUM, "", 0, 0, "fake|openai", 0, "LLM provider (default from PROVIDERS)")  \
    X(SORA_PROVIDER, CT_ENUM, "", 0, 0, "fake|openai", 0,                                          \
      "Video provider (default from PROVIDERS)")                                                   \
    X(RENDER_PROVIDER, CT_ENUM, "local", 0, 0, "local|remotion", 0, "Renderer")                    \
    X(PUBLISH_PROVIDER, CT_ENUM, "", 0, 0, "fake|upload_post", 0,                                  \
      "Publisher (default from PROVIDERS)")                                                        \
    X(LLM_BASE_URL, CT_STR, "https://api.openai.com/v1", 0, 0, NULL, 0,                            \
      "Chat completions base URL")                                                                 \
    X(LLM_API_KEY, CT_STR, "", 0, 0, NULL, CF_SECRET, "LLM bearer key")                            \
    X(LLM_MODEL, CT_STR, "gpt-4o-mini", 0, 0, NULL, 0, "LLM model")                                \
    X(LLM_TIMEOUT_MS, CT_INT, "60000", 100, 600000, NULL, 0, "LLM call deadline")                  \
    X(AGENT_MAX_TURNS, CT_INT, "4", 1, 32, NULL, 0, "Agent turns per step")                        \
    X(OPENAI_BASE_URL, CT_STR, "https://api.openai.com", 0, 0, NULL, 0,                            \
      "Videos and moderation base URL")                                                            \
    X(OPENAI_API_KEY, CT_STR, "", 0, 0, NULL, CF_SECRET, "OpenAI bearer key")                      \
    X(OPENAI_WEBHOOK_SECRET, CT_STR, "", 0, 0, NULL, CF_SECRET,                                    \
      "Standard Webhooks secret (whsec_...) for /v1/webhooks/sora")                                \
    X(REMOTION_SERVICE_URL, CT_STR, "", 0, 0, NULL, 0, "Remotion render service base URL")         \
    X(REMOTION_API_SECRET, CT_STR, "", 0, 0, NULL, CF_SECRET, "Remotion bearer secret")            \
    X(REMOTION_WEBHOOK_SECRET, CT_STR, "", 0, 0, NULL, CF_SECRET, "Remotion callback HMAC secret") \
    X(UPLOAD_POST_API_URL, CT_STR, "https://api.upload-post.com", 0, 0, NULL, 0,                   \
      "Upload-Post base URL")                                                                      \
    X(UPLOAD_POST_API_KEY, CT_STR, "", 0, 0, NULL, CF_SECRET, "Upload-Post key")                   \
    X(UPLOAD_POST_USER, CT_STR, "", 0, 0, NULL, 0, "Upload-Post user")                             \
    X(TELEGRAM_BOT_TOKEN, CT_STR, "", 0, 0, NULL, CF_SECRET, "Telegram notifications when set")    \
    X(MAX_DOWNLOAD_BYTES, CT_INT, "1073741824", 1024, 68719476736, NULL, 0, "Largest download")    \
    X(ALLOW_PRIVATE_URLS, CT_BOOL, "false", 0, 0, NULL, 0,                                         \
      "Allow downloads from private, loopback and link-local addresses")                           \
    X(ALLOWED_MEDIA_DOMAINS, CT_STR, "", 0, 0, NULL, CF_LIST, "When set, the only download hosts") \
    X(WEBHOOK_EARLY_TTL_S, CT_INT, "600", 0, 86400, NULL, 0,                                       \
      "How long a webhook for an unknown task is kept")                                            \
    X(PROJECTS_DIR, CT_STR, "./projects", 0, 0, NULL, 0,                                           \
      "Directory of the project files (<name>.json)")                                              \
    X(V2_WAIT_MS, CT_INT, "30000", 0, 600000, NULL, 0, "Longest wait of the v2 routes")            \
    X(SORA_POLL_MS, CT_INT, "30000", 0, 86400000, NULL, 0,                                         \
      "Real video provider: status polls this long after submission and then as often while "      \
      "clips are missing (0: webhooks only)")                                                      \
    X(PUBLISH_POLL_MS, CT_INT, "5000", 10, 3600000, NULL, 0,                                       \
      "Interval of the Upload-Post status polls while an upload is processing")                    \
    /* media */                                                                                    \
    X(MEDIA_DIR, CT_STR, "./data/media", 0, 0, NULL, 0, "Local media directory")                   \
    X(STORAGE_BACKEND, CT_ENUM, "local", 0, 0, "local|s3", 0, "Where media is stored")             \
    X(S3_BUCKET, CT_STR, "", 0, 0, NULL, 0, "S3 bucket")                                           \
    X(S3_PREFIX, CT_STR, "", 0, 0, NULL, 0, "S3 key prefix")                                       \
    X(S3_ENDPOINT, CT_STR, "", 0, 0, NULL, 0,                                                      \
      "S3 endpoint: empty for AWS; with {bucket} in it, virtual-host style; else path style")      \
    X(S3_REGION, CT_STR, "us-east-1", 0, 0, NULL, 0, "S3 region")                                  \
    X(AWS_ACCESS_KEY_ID, CT_STR, "", 0, 0, NULL, CF_SECRET, "S3 access key id")                    \
    X(AWS_SECRET_ACCESS_KEY, CT_STR, "", 0, 0, NULL, CF_SECRET, "S3 secret key")                   \
    X(S3_PRESIGN_S, CT_INT, "86400", 1, 604800, NULL, 0, "Presigned URL lifetime")                 \
    X(MEDIA_ACCESS_TOKEN, CT_STR, "", 0, 0, NULL, CF_SECRET,                                       \
      "When set, media needs it or a signed URL")                                                  \
    X(MEDIA_URL_TTL_S, CT_INT, "86400", 1, 31536000, NULL, 0, "Signed media URL lifetime")         \
    X(MEDIA_RETENTION_HOURS, CT_INT, "168", 0, 87600, NULL, 0,                                     \
      "Intermediate clips of finished runs removed after this (0 keeps)")                          \
    X(TRANSCODE_PRESET, CT_ENUM, "veryfast", 0, 0,                                                 \
      "ultrafast|superfast|veryfast|faster|fast|medium|slow|slower|veryslow", 0, "x264 preset")    \
    X(TRANSCODE_CRF, CT_INT, "23", 0, 51, NULL, 0, "x264 CRF")                                     \
    X(TRANSCODE_X264_PARAMS, CT_STR, "sliced-threads=1:rc-lookahead=1:bframes=1", 0, 0, NULL, 0,   \
      "x264 options of every H.264 encode (key=value:...; bound the memory, see Media)")           \
    X(RENDER_FONT, CT_STR, "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf", 0, 0, NULL, 0,       \
      "Font for overlay texts")                                                                    \
    X(RENDER_SCALE, CT_NUM, "1.0", 0.05, 4, NULL, 0, "Scales output sizes (tests use small ones)") \
    /* fakes */                                                                                    \
    X(FAKE_CLIP_SECONDS, CT_NUM, "2", 0.1, 60, NULL, 0, "Length of a fake clip")                   \
    X(FAKE_CLIP_SIZE, CT_STR, "360x640", 0, 0, NULL, 0, "Size of a fake clip (WxH)")               \
    X(FAKE_VIDEO_DELAY_MS, CT_INT, "200", 0, 600000, NULL, 0, "Fake video webhook delay")          \
    X(FAKE_VIDEO_FAIL_INDEX, CT_INT, "-1", -1, 1000, NULL, 0, "Fake clip that fails (-1: none)")   \
    X(FAKE_VIDEO_WEBHOOKS, CT_BOOL, "true", 0, 0, NULL, 0,                                         \
      "false: the fake video API sends no webhooks (clips are found by status polls; tests)")      \
    X(FAKE_LLM_NO_TOOL, CT_ENUM, "none", 0, 0, "none|producer|editor|publisher", 0,                \
      "This agent of the fake LLM answers without its tool call (tests)")                          \
    X(FAKE_PUBLISH_PENDING_POLLS, CT_INT, "0", 0, 1000, NULL, 0,                                   \
      "The fake Upload-Post answers a request_id and says processing for this many status polls "  \
      "(0: the URL at once)")                                                                      \
    /* public demo */                                                                              \
    X(PUBLIC_DEMO_ENABLED, CT_BOOL, "false", 0, 0, NULL, 0, "Enable /v1/public/demo")              \
    X(PUBLIC_DEMO_ALLOWED_WORKFLOWS, CT_STR, "motivational", 0, 0, NULL, CF_LIST,                  \
      "Projects the public demo may start")                                                        \
    X(PUBLIC_DEMO_CORS_ORIGINS, CT_STR, "", 0, 0, NULL, CF_LIST, "Origins allowed by CORS")        \
    X(PUBLIC_DEMO_TOKEN_TTL_HOURS, CT_INT, "72", 1, 8760, NULL, 0, "Public token lifetime")        \
    /* command-line client */                                                                      \
    X(MYLOWARE_URL, CT_STR, "http://127.0.0.1:8000", 0, 0, NULL, 0,                                \
      "Server used by the client commands")                                                        \
    X(MYLOWARE_API_KEY, CT_STR, "", 0, 0, NULL, CF_SECRET, "API key used by the client commands")

#endif

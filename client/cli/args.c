/* Options and arguments: getopt_long() per command with our own messages, value parsers,
 * and shell-like word splitting for `sh --cmd`. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ---- usage errors ---- */

static void print_usage_hint(struct cli *cli)
{
    const char *path = cli->cmd_path ? cli->cmd_path : "";
    if (cli->cmd && cli->cmd->usage)
        fprintf(stderr, "Usage: %s %s\n", CLI_PROG, cli->cmd->usage);
    else
        fprintf(stderr, "Usage: %s [OPTIONS] COMMAND [ARGS]...\n", CLI_PROG);
    fprintf(stderr, "Try '%s%s%s --help' for help.\n\n", CLI_PROG, *path ? " " : "", path);
}

int cli_usage_error(struct cli *cli, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    print_usage_hint(cli);
    fputs("Error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return CLI_EXIT_USAGE;
}

/* The words of names from the n-th on: the arguments still missing after n were given. */
static const char *words_from(const char *names, int n)
{
    const char *p = names;
    for (int i = 0; i < n && strchr(p, ' '); i++)
        p = strchr(p, ' ') + 1;
    return p;
}

int cli_want_args(struct cli *cli, const struct cli_opts *o, int min, int max, const char *names)
{
    if (o->n_args < min)
        return cli_usage_error(cli, "missing argument%s: %s", min - o->n_args > 1 ? "s" : "",
                               words_from(names, o->n_args));
    if (max >= 0 && o->n_args > max)
        return cli_usage_error(cli, "unexpected extra argument '%s' (expected %s)", o->args[max],
                               names);
    return 0;
}

/* ---- getopt ---- */

/* Whether the word arg ("--cwd" or "--cwd=x") names a long option whose value is val. */
static bool is_long_option(const struct cli_opts *o, const char *arg, int val)
{
    size_t len = strcspn(arg + 2, "=");
    for (const struct option *lo = o->longopts; lo && lo->name; lo++)
        if (lo->val == val && strncmp(lo->name, arg + 2, len) == 0)
            return true;
    return false;
}

/* The option as the user wrote it, for messages: "--cwd" or "-w". getopt leaves optopt 0 for
 * an unknown long option, the option's value for a long one missing its argument, and the
 * character for a short one (whose word may not have been passed yet, in a cluster). */
static void offending_option(const struct cli_opts *o, char *buf, size_t size)
{
    const char *word = optind > 0 && optind <= o->argc ? o->argv[optind - 1] : "?";
    bool long_word = strncmp(word, "--", 2) == 0;
    if (long_word && (optopt == 0 || is_long_option(o, word, optopt)))
        snprintf(buf, size, "%.*s", (int)strcspn(word, "="), word);
    else if (optopt > 0 && optopt < 128 && isgraph(optopt))
        snprintf(buf, size, "-%c", optopt);
    else
        snprintf(buf, size, "%s", word);
}

static int option_problem(struct cli_opts *o, int c)
{
    char name[64];
    const char *word = optind > 0 && optind <= o->argc ? o->argv[optind - 1] : "";
    offending_option(o, name, sizeof(name));
    if (c == ':')
        o->status = cli_usage_error(o->cli, "option '%s' needs a value", name);
    else if (strncmp(word, "--", 2) == 0 && strchr(word, '=') && optopt &&
             is_long_option(o, word, optopt))
        o->status = cli_usage_error(o->cli, "option '%s' takes no value", name);
    else
        o->status = cli_usage_error(o->cli, "no such option: %s", name);
    return CLI_OPT_EXIT;
}

static void begin(struct cli_opts *o)
{
    snprintf(o->optstring_buf, sizeof(o->optstring_buf), "%s:%s", o->command_tail ? "+" : "",
             o->optstring);
    optind = 0; /* glibc: start afresh, even after an earlier pass */
    opterr = 0;
    o->started = true;
}

/* After getopt stopped in command_tail mode: take positionals, or find the command. Returns
 * true when parsing options should go on. */
static bool take_tail(struct cli_opts *o, bool dashdash)
{
    int want = o->n_fixed < CLI_MAX_FIXED ? o->n_fixed : CLI_MAX_FIXED;
    if (!dashdash && optind < o->argc && o->n_taken < want) {
        o->fixed[o->n_taken++] = o->argv[optind++];
        return true;
    }
    while (optind < o->argc && o->n_taken < want)
        o->fixed[o->n_taken++] = o->argv[optind++];
    o->command = o->argv + optind;
    o->n_command = o->argc - optind;
    return false;
}

int cli_opt_next(struct cli_opts *o)
{
    if (!o->started)
        begin(o);
    for (;;) {
        int before = optind == 0 ? 1 : optind;
        optopt = 0;
        int c = getopt_long(o->argc, o->argv, o->optstring_buf, o->longopts, NULL);
        if (c == 'h') {
            cli_print_help(o->cli->cmd, o->cli->cmd_path, stdout);
            o->status = CLI_EXIT_OK;
            return CLI_OPT_EXIT;
        }
        if (c == ':' || c == '?')
            return option_problem(o, c);
        if (c != -1)
            return c;
        if (!o->command_tail) {
            o->args = o->argv + optind;
            o->n_args = o->argc - optind;
            return -1;
        }
        bool dashdash = optind == before + 1 && strcmp(o->argv[before], "--") == 0;
        if (!take_tail(o, dashdash))
            return -1;
    }
}

/* ---- values ---- */

int cli_duration(const char *s, double *ret_seconds)
{
    char *end = NULL;
    if (!s || !*s || isspace((unsigned char)*s))
        return -CWS_E_INVALID_ARGUMENT;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        return -CWS_E_INVALID_ARGUMENT;
    double unit = 1;
    if (*end) {
        if (end[1])
            return -CWS_E_INVALID_ARGUMENT;
        switch (*end) {
        case 's':
            unit = 1;
            break;
        case 'm':
            unit = 60;
            break;
        case 'h':
            unit = 3600;
            break;
        case 'd':
            unit = 86400;
            break;
        default:
            return -CWS_E_INVALID_ARGUMENT;
        }
    }
    *ret_seconds = v * unit;
    return 0;
}

int cli_timeout_ms(double seconds)
{
    if (seconds <= 0)
        return -1;
    return seconds * 1000 >= INT32_MAX ? INT32_MAX : (int)(seconds * 1000);
}

int cli_parse_seconds(struct cli *cli, const char *opt, const char *s, double *ret)
{
    double v = 0;
    if (cli_duration(s, &v) < 0) {
        cli_usage_error(cli,
                        "%s must be a non-negative number of seconds (or 90s, 10m, 2h, 1d), "
                        "not '%s'",
                        opt, s);
        return -CWS_E_INVALID_ARGUMENT;
    }
    *ret = v;
    return 0;
}

int cli_parse_count(struct cli *cli, const char *opt, const char *s, long long min, long long max,
                    long long *ret)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || isspace((unsigned char)*s) || v < min || v > max) {
        cli_usage_error(cli, "%s must be an integer between %lld and %lld, not '%s'", opt, min, max,
                        s);
        return -CWS_E_INVALID_ARGUMENT;
    }
    *ret = v;
    return 0;
}

int cli_parse_output(struct cli *cli, const char *s, bool *ret_json)
{
    if (strcmp(s, "json") == 0 || strcmp(s, "table") == 0) {
        *ret_json = s[0] == 'j';
        return 0;
    }
    cli_usage_error(cli, "--output must be 'table' or 'json', not '%s'", s);
    return -CWS_E_INVALID_ARGUMENT;
}

/* Parse exactly n digits at *p into *ret, advancing p. */
static bool digits(const char **p, int n, int *ret)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*p)[i]))
            return false;
        v = v * 10 + ((*p)[i] - '0');
    }
    *p += n;
    *ret = v;
    return true;
}

/* "Z", "+HH:MM", "-HHMM" or nothing (UTC) at p: the offset east of UTC in seconds. */
static bool zone(const char *p, long *ret_offset)
{
    int h = 0, m = 0;
    *ret_offset = 0;
    if (!*p || ((p[0] == 'Z' || p[0] == 'z') && !p[1]))
        return true;
    if (*p != '+' && *p != '-')
        return false;
    int sign = *p++ == '-' ? -1 : 1;
    if (!digits(&p, 2, &h))
        return false;
    if (*p == ':')
        p++;
    if (!digits(&p, 2, &m) || *p)
        return false;
    *ret_offset = sign * (h * 3600L + m * 60L);
    return true;
}

/* The fraction of a second at *p (".123"), in ms, advancing p. */
static int fraction_ms(const char **p)
{
    int ms = 0, scale = 100;
    if (**p != '.')
        return 0;
    (*p)++;
    while (isdigit((unsigned char)**p)) {
        ms += (**p - '0') * scale;
        scale /= 10;
        (*p)++;
    }
    return ms;
}

static int parse_datetime(const char *s, int64_t *ret_ms)
{
    struct tm tm = {0};
    const char *p = s;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, ms = 0;
    long offset = 0;
    if (!digits(&p, 4, &y) || *p++ != '-' || !digits(&p, 2, &mo) || *p++ != '-' ||
        !digits(&p, 2, &d))
        return -CWS_E_INVALID_ARGUMENT;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!digits(&p, 2, &h) || *p++ != ':' || !digits(&p, 2, &mi))
            return -CWS_E_INVALID_ARGUMENT;
        if (*p == ':') {
            p++;
            if (!digits(&p, 2, &sec))
                return -CWS_E_INVALID_ARGUMENT;
            ms = fraction_ms(&p);
        }
    }
    if (!zone(p, &offset) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return -CWS_E_INVALID_ARGUMENT;
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -CWS_E_INVALID_ARGUMENT;
    *ret_ms = ((int64_t)t - offset) * 1000 + ms;
    return 0;
}

int cli_time_arg(const char *s, int64_t now_ms, int64_t *ret_ms)
{
    double ago = 0;
    if (cli_duration(s, &ago) == 0) {
        int64_t t = now_ms - (int64_t)(ago * 1000);
        *ret_ms = t > 0 ? t : 1;
        return 0;
    }
    return parse_datetime(s, ret_ms);
}

/* ---- string arrays ---- */

int cli_strv_push(struct cli_strv *sv, const char *s)
{
    if (sv->n + 2 > sv->cap) {
        size_t cap = sv->cap ? sv->cap * 2 : 8;
        const char **v = realloc(sv->v, cap * sizeof(*v));
        if (!v)
            return -CWS_E_NOMEM;
        sv->v = v;
        sv->cap = cap;
    }
    sv->v[sv->n++] = s;
    sv->v[sv->n] = NULL;
    return 0;
}

void cli_strv_free(struct cli_strv *sv)
{
    if (!sv)
        return;
    free(sv->v);
    sv->v = NULL;
    sv->n = sv->cap = 0;
}

const char *const *cli_strv_get(struct cli_strv *sv)
{
    static const char *const empty[] = {NULL};
    return sv->v ? sv->v : empty;
}

/* ---- word splitting ---- */

void cli_words_free(char **argv)
{
    if (!argv)
        return;
    for (char **p = argv; *p; p++)
        free(*p);
    free(argv);
}

struct words {
    char **v;
    size_t n, cap;
};

static int words_push(struct words *w, char *word)
{
    if (w->n + 2 > w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 8;
        char **v = realloc(w->v, cap * sizeof(*v));
        if (!v)
            return -CWS_E_NOMEM;
        w->v = v;
        w->cap = cap;
    }
    w->v[w->n++] = word;
    w->v[w->n] = NULL;
    return 0;
}

/* Read one word starting at *pp (not at a blank) into out; advance *pp past it. */
static int read_word(const char **pp, char *out)
{
    const char *p = *pp;
    size_t k = 0;
    while (*p && !isspace((unsigned char)*p)) {
        if (*p == '\'') {
            const char *end = strchr(p + 1, '\'');
            if (!end)
                return -CWS_E_INVALID_ARGUMENT;
            memcpy(out + k, p + 1, (size_t)(end - p - 1));
            k += (size_t)(end - p - 1);
            p = end + 1;
        } else if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && p[1] && strchr("\\\"$`\n", p[1]))
                    p++;
                out[k++] = *p;
            }
            if (*p != '"')
                return -CWS_E_INVALID_ARGUMENT;
            p++;
        } else if (*p == '\\') {
            if (!p[1])
                return -CWS_E_INVALID_ARGUMENT;
            out[k++] = p[1];
            p += 2;
        } else {
            out[k++] = *p++;
        }
    }
    out[k] = '\0';
    *pp = p;
    return 0;
}

int cli_split_words(const char *line, char ***ret_argv)
{
    struct words w = {0};
    const char *p = line;
    int r = 0;
    for (;;) {
        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        char *word = malloc(strlen(p) + 1); /* a word is never longer than the rest */
        if (!word) {
            r = -CWS_E_NOMEM;
            break;
        }
        r = read_word(&p, word);
        if (r == 0)
            r = words_push(&w, word);
        if (r < 0) {
            free(word);
            break;
        }
    }
    if (r == 0 && w.n == 0)
        r = -CWS_E_INVALID_ARGUMENT;
    if (r < 0) {
        cli_words_free(w.v);
        return r;
    }
    *ret_argv = w.v;
    return 0;
}

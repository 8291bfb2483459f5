/* What the CLI prints: JSON (valid even for bytes that are not UTF-8), tables, times, sizes. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

/* ---- JSON ---- */

#define JSON_MAX_DEPTH ((int)(sizeof(((struct cli_json *)0)->first)))

void cli_json_init(struct cli_json *j, FILE *out)
{
    memset(j, 0, sizeof(*j));
    j->out = out;
}

static void newline_indent(struct cli_json *j)
{
    fputc('\n', j->out);
    for (int i = 0; i < j->depth; i++)
        fputs("  ", j->out);
}

/* Before any value: a separator and the indentation, unless it follows a key. */
static void before_value(struct cli_json *j)
{
    if (j->after_key) {
        j->after_key = false;
        return;
    }
    if (j->depth == 0)
        return;
    if (!j->first[j->depth - 1])
        fputc(',', j->out);
    j->first[j->depth - 1] = false;
    newline_indent(j);
}

static void begin(struct cli_json *j, char open)
{
    before_value(j);
    fputc(open, j->out);
    if (j->depth < JSON_MAX_DEPTH)
        j->first[j->depth] = true;
    j->depth++;
}

static void end(struct cli_json *j, char close)
{
    j->depth--;
    bool empty = j->depth < JSON_MAX_DEPTH && j->first[j->depth];
    if (!empty)
        newline_indent(j);
    fputc(close, j->out);
}

void cli_json_begin_object(struct cli_json *j)
{
    begin(j, '{');
}

void cli_json_end_object(struct cli_json *j)
{
    end(j, '}');
}

void cli_json_begin_array(struct cli_json *j)
{
    begin(j, '[');
}

void cli_json_end_array(struct cli_json *j)
{
    end(j, ']');
}

/* Length of the valid UTF-8 sequence at s (n bytes left), or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
    size_t len;
    uint32_t cp;
    if (s[0] < 0x80)
        return 1;
    if ((s[0] & 0xe0) == 0xc0) {
        len = 2;
        cp = s[0] & 0x1f;
    } else if ((s[0] & 0xf0) == 0xe0) {
        len = 3;
        cp = s[0] & 0x0f;
    } else if ((s[0] & 0xf8) == 0xf0) {
        len = 4;
        cp = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are not UTF-8. */
    static const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
        return 0;
    return len;
}

static void write_escaped(FILE *out, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n = strlen(str);
    fputc('"', out);
    for (size_t i = 0; i < n;) {
        unsigned char c = s[i];
        size_t len = utf8_len(s + i, n - i);
        if (len == 0) {
            fputs("\\ufffd", out);
            i++;
            continue;
        }
        if (len > 1) {
            fwrite(s + i, 1, len, out);
        } else if (c == '"' || c == '\\') {
            fputc('\\', out);
            fputc(c, out);
        } else if (c == '\n') {
            fputs("\\n", out);
        } else if (c == '\r') {
            fputs("\\r", out);
        } else if (c == '\t') {
            fputs("\\t", out);
        } else if (c == '\b') {
            fputs("\\b", out);
        } else if (c == '\f') {
            fputs("\\f", out);
        } else if (c < 0x20 || c == 0x7f) {
            fprintf(out, "\\u%04x", c);
        } else {
            fputc(c, out);
        }
        i += len;
    }
    fputc('"', out);
}

void cli_json_key(struct cli_json *j, const char *key)
{
    before_value(j);
    write_escaped(j->out, key);
    fputs(": ", j->out);
    j->after_key = true;
}

void cli_json_string(struct cli_json *j, const char *s)
{
    if (!s) {
        cli_json_null(j);
        return;
    }
    before_value(j);
    write_escaped(j->out, s);
}

void cli_json_string_or_null(struct cli_json *j, const char *s)
{
    cli_json_string(j, s && *s ? s : NULL);
}

void cli_json_int(struct cli_json *j, int64_t v)
{
    before_value(j);
    fprintf(j->out, "%" PRId64, v);
}

void cli_json_uint(struct cli_json *j, uint64_t v)
{
    before_value(j);
    fprintf(j->out, "%" PRIu64, v);
}

void cli_json_double(struct cli_json *j, double v)
{
    if (!isfinite(v)) {
        cli_json_null(j); /* JSON has no inf or nan */
        return;
    }
    before_value(j);
    if (v == floor(v) && fabs(v) < 1e15)
        fprintf(j->out, "%.1f", v);
    else
        fprintf(j->out, "%.17g", v);
}

void cli_json_bool(struct cli_json *j, bool v)
{
    before_value(j);
    fputs(v ? "true" : "false", j->out);
}

void cli_json_null(struct cli_json *j)
{
    before_value(j);
    fputs("null", j->out);
}

void cli_json_time(struct cli_json *j, int64_t ms)
{
    struct tm tm;
    char buf[64];
    if (ms <= 0) {
        cli_json_null(j);
        return;
    }
    time_t t = (time_t)(ms / 1000);
    int frac = (int)(ms % 1000);
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
    /* As Python's isoformat(): microseconds only when not zero. */
    if (frac)
        snprintf(buf + n, sizeof(buf) - n, ".%03d000+00:00", frac);
    else
        snprintf(buf + n, sizeof(buf) - n, "+00:00");
    cli_json_string(j, buf);
}

void cli_json_finish(struct cli_json *j)
{
    fputc('\n', j->out);
}

/* ---- tables ---- */

void cli_table_init(struct cli_table *t, size_t n_cols, const char *const *headers,
                    const size_t *min_widths)
{
    memset(t, 0, sizeof(*t));
    t->n_cols = n_cols < CLI_TABLE_MAX_COLS ? n_cols : CLI_TABLE_MAX_COLS;
    for (size_t i = 0; i < t->n_cols; i++) {
        t->headers[i] = headers[i];
        t->widths[i] = strlen(headers[i]);
        if (min_widths && min_widths[i] > t->widths[i])
            t->widths[i] = min_widths[i];
    }
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
    if (t->n_rows == t->cap_rows) {
        size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
        char **v = realloc(t->cells, cap * t->n_cols * sizeof(*v));
        if (!v)
            return -CWS_E_NOMEM;
        t->cells = v;
        t->cap_rows = cap;
    }
    char **row = t->cells + t->n_rows * t->n_cols;
    for (size_t i = 0; i < t->n_cols; i++) {
        const char *s = cells[i] && *cells[i] ? cells[i] : "-";
        row[i] = strdup(s);
        if (!row[i]) {
            while (i-- > 0)
                free(row[i]);
            return -CWS_E_NOMEM;
        }
        size_t len = strlen(s);
        if (len > t->widths[i])
            t->widths[i] = len;
    }
    t->n_rows++;
    return 0;
}

static void print_row(const struct cli_table *t, const char *const *cells, FILE *out)
{
    for (size_t i = 0; i < t->n_cols; i++) {
        if (i + 1 < t->n_cols)
            fprintf(out, "%-*s  ", (int)t->widths[i], cells[i]);
        else
            fprintf(out, "%s\n", cells[i]);
    }
}

void cli_table_print(const struct cli_table *t, FILE *out)
{
    print_row(t, t->headers, out);
    for (size_t i = 0; i < t->n_cols; i++) {
        for (size_t k = 0; k < t->widths[i]; k++)
            fputc('-', out);
        fputs(i + 1 < t->n_cols ? "  " : "\n", out);
    }
    for (size_t r = 0; r < t->n_rows; r++)
        print_row(t, (const char *const *)(t->cells + r * t->n_cols), out);
}

void cli_table_free(struct cli_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
        free(t->cells[i]);
    free(t->cells);
    t->cells = NULL;
    t->n_rows = t->cap_rows = 0;
}

void cli_kv(FILE *out, int key_width, const char *key, const char *value)
{
    fprintf(out, "%-*s  %s\n", key_width, key, value && *value ? value : "-");
}

/* ---- formatting ---- */

char *cli_format_time(int64_t ms, char *buf, size_t size)
{
    struct tm tm;
    buf[0] = '\0';
    if (ms <= 0)
        return buf;
    time_t t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
    strftime(buf, size, "%Y-%m-%d %H:%M:%S UTC", &tm);
    return buf;
}

char *cli_format_time_rfc3339(int64_t ms, char *buf, size_t size)
{
    struct tm tm;
    time_t t = (time_t)(ms / 1000);
    gmtime_r(&t, &tm);
    size_t n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, size - n, ".%03dZ", (int)(ms % 1000));
    return buf;
}

char *cli_format_size(uint64_t bytes, char *buf, size_t size)
{
    static const char *const units[] = {"KiB", "MiB", "GiB", "TiB"};
    if (bytes < 1024) {
        snprintf(buf, size, "%" PRIu64 " B", bytes);
        return buf;
    }
    double v = (double)bytes / 1024;
    size_t u = 0;
    while (v >= 1024 && u + 1 < sizeof(units) / sizeof(units[0])) {
        v /= 1024;
        u++;
    }
    snprintf(buf, size, "%.1f %s", v, units[u]);
    return buf;
}

char *cli_format_duration(int64_t ms, char *buf, size_t size)
{
    int64_t s = ms / 1000;
    int64_t d = s / 86400, h = s / 3600 % 24, m = s / 60 % 60, sec = s % 60;
    if (d)
        snprintf(buf, size, "%" PRId64 "d %" PRId64 "h %" PRId64 "m", d, h, m);
    else if (h)
        snprintf(buf, size, "%" PRId64 "h %" PRId64 "m %" PRId64 "s", h, m, sec);
    else if (m)
        snprintf(buf, size, "%" PRId64 "m %" PRId64 "s", m, sec);
    else
        snprintf(buf, size, "%" PRId64 "s", sec);
    return buf;
}

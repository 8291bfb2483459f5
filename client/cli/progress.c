/* A progress bar on stderr for large transfers, drawn in place on one line. */
#include <string.h>
#include <unistd.h>

#include "cli.h"

#define REDRAW_MS 100

void cli_progress_init(struct cli_progress *p, const char *label, uint64_t total, bool allowed)
{
    memset(p, 0, sizeof(*p));
    p->enabled = allowed && isatty(STDERR_FILENO);
    p->label = label;
    p->total = total;
    p->start_ms = cli_now_ms();
}

void cli_progress_set_total(struct cli_progress *p, uint64_t total)
{
    p->total = total;
}

static bool worth_showing(const struct cli_progress *p)
{
    return p->total >= CLI_PROGRESS_MIN_BYTES ||
           (p->total == 0 && p->done >= CLI_PROGRESS_MIN_BYTES);
}

/* "[=======>      ]" of width w into buf. */
static void bar(char *buf, int w, double frac)
{
    int full = (int)(frac * w);
    buf[0] = '[';
    for (int i = 0; i < w; i++)
        buf[1 + i] = i < full ? '=' : (i == full ? '>' : ' ');
    buf[w + 1] = ']';
    buf[w + 2] = '\0';
}

static void draw(struct cli_progress *p)
{
    char done[32], total[32], rate[32], line[512], barbuf[128];
    unsigned cols = 80, rows = 24;
    int64_t elapsed = cli_now_ms() - p->start_ms;
    uint64_t per_s = elapsed > 0 ? p->done * 1000 / (uint64_t)elapsed : 0;
    cli_term_size(STDERR_FILENO, &cols, &rows);
    cli_format_size(p->done, done, sizeof(done));
    cli_format_size(per_s, rate, sizeof(rate));
    if (p->total) {
        double frac = p->done >= p->total ? 1.0 : (double)p->done / (double)p->total;
        cli_format_size(p->total, total, sizeof(total));
        int fixed = snprintf(line, sizeof(line), "%s  %s / %s  %3d%%  %s/s  ", p->label, done,
                             total, (int)(frac * 100), rate);
        int w = (int)cols - fixed - 3;
        if (w > 60)
            w = 60;
        if (w >= 10) {
            bar(barbuf, w, frac);
            snprintf(line + fixed, sizeof(line) - (size_t)fixed, "%s", barbuf);
        }
    } else {
        snprintf(line, sizeof(line), "%s  %s  %s/s", p->label, done, rate);
    }
    if (strlen(line) >= cols)
        line[cols > 1 ? cols - 1 : 0] = '\0'; /* never wrap: \r must return to our line */
    fprintf(stderr, "\r%s\033[K", line);
    fflush(stderr);
    p->drawn = true;
    p->last_draw_ms = cli_now_ms();
}

void cli_progress_update(struct cli_progress *p, uint64_t done)
{
    p->done = done;
    if (!p->enabled || !worth_showing(p))
        return;
    if (p->drawn && cli_now_ms() - p->last_draw_ms < REDRAW_MS)
        return;
    draw(p);
}

void cli_progress_finish(struct cli_progress *p)
{
    if (!p->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    p->drawn = false;
}

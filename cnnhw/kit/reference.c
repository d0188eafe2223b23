/*
 * The quantized network of this study kit, in C99 alone.
 *
 *   cc -std=c99 -O2 -o reference reference.c -lm && ./reference      (in the kit's folder)
 *
 * It reads network.txt (the network layer by layer, as key-value lines) and the .hex files
 * ($readmemh format: one two's-complement value per line), quantizes the images of vectors/x.txt,
 * runs every layer on 64-bit integers, and compares the quantized input and every layer's output
 * with the vectors/ files that cnnhw's golden model wrote, value by value. It prints one line per
 * layer and, at the first difference, the layer, the image, the index, the value expected and the
 * value computed, and exits with status 1.
 *
 * Two steps are float by definition: quantizing the input (x / scale, rounded) and the
 * "onnxruntime" rescaling rule (onnxruntime multiplies in float32). Right shifts of negative
 * values are written as floor_shift(), which does not rely on the compiler's >>.
 */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_LAYERS 256
#define MAX_READS 8
#define MAX_TENSORS 8
#define MAX_KEYS 24
#define MAX_LIST 16
#define PATH 512

typedef long long i64;

typedef struct { int dims, shape[4], bits, is_signed; i64 size; i64 *v; char name[64]; } Tensor;
typedef struct { char rule[32]; int keys; char key[MAX_KEYS][32]; int count[MAX_KEYS]; i64 value[MAX_KEYS][MAX_LIST]; } Rule;
typedef struct {
    int index, reads, read[MAX_READS];
    char op[32], kind[16];
    Tensor out;                       /* shape and format; v: the expected values (all images) */
    char out_hex[PATH];
    int kernel[2], stride[2], pads[4], dilation[2], groups, pad_value, lo, hi, table_first, count_include_pad;
    int tensors; Tensor tensor[MAX_TENSORS];
    int has_rescale, has_divide; Rule rescale, divide;
} Layer;

static int images;
static Layer layers[MAX_LAYERS + 1];  /* layers[0]: the quantized input */
static int count;
static double input_scale; static int input_zero, input_rounding, input_float32; static char x_file[PATH];

static void fail(const char *what, const char *detail) {
    fprintf(stderr, "reference.c: %s %s\n", what, detail);
    exit(2);
}

/* ---------------------------------------------------------------- integers */
static i64 floor_shift(i64 v, int s) { return v >= 0 ? v >> s : -((-v - 1) >> s) - 1; }
static i64 clamp(i64 v, i64 lo, i64 hi) { return v < lo ? lo : v > hi ? hi : v; }
static i64 lowest(int bits, int is_signed) { return is_signed ? -((i64)1 << (bits - 1)) : 0; }
static i64 highest(int bits, int is_signed) { return is_signed ? ((i64)1 << (bits - 1)) - 1 : ((i64)1 << bits) - 1; }

/* v / 2^s rounded: half up is floor(v / 2^s + 1/2); half even sends a tie to the even neighbour. */
static i64 round_shift(i64 v, int s, int half_even) {
    if (s == 0) return v;
    i64 half = (i64)1 << (s - 1), quotient = floor_shift(v, s), remainder = v - quotient * ((i64)1 << s);
    if (!half_even) return floor_shift(v + half, s);
    return quotient + (remainder > half || (remainder == half && (quotient & 1)));
}

/* TFLite's SaturatingRoundingDoublingHighMul (b > 0) and RoundingDivideByPOT. */
static i64 doubling_high_mul(i64 a, i64 b) { return floor_shift(a * b + ((i64)1 << 30), 31); }
static i64 rounding_divide_by_pot(i64 v, int e) {
    i64 mask = ((i64)1 << e) - 1, remainder = v & mask, threshold = (mask >> 1) + (v < 0);
    return floor_shift(v, e) + (remainder > threshold);
}
static i64 multiply_by_quantized_multiplier(i64 v, i64 m0, int shift) {
    int left = shift > 0 ? shift : 0, right = shift > 0 ? 0 : -shift;
    return rounding_divide_by_pot(doubling_high_mul(v * ((i64)1 << left), m0), right);
}

/* ---------------------------------------------------------------- files */
static void read_hex(const char *path, Tensor *t, i64 size) {
    FILE *f = fopen(path, "r");
    char word[40];
    if (!f) fail("cannot open", path);
    t->v = malloc(sizeof(i64) * (size_t)(size > 0 ? size : 1));
    for (i64 k = 0; k < size; k++) {
        if (fscanf(f, "%39s", word) != 1) fail("too few values in", path);
        unsigned long long u = strtoull(word, NULL, 16);
        if (t->is_signed && t->bits < 64 && (u >> (t->bits - 1)) & 1) u -= (unsigned long long)1 << t->bits;
        t->v[k] = (i64)u;
    }
    fclose(f);
}

static i64 elements(const Tensor *t) { i64 n = 1; for (int d = 0; d < t->dims; d++) n *= t->shape[d]; return n; }

static void read_shape(FILE *f, Tensor *t) {
    if (fscanf(f, "%d", &t->dims) != 1 || t->dims < 1 || t->dims > 4) fail("bad shape in", "network.txt");
    for (int d = 0; d < t->dims; d++) if (fscanf(f, "%d", &t->shape[d]) != 1) fail("bad shape in", "network.txt");
    if (fscanf(f, "%d %d", &t->bits, &t->is_signed) != 2) fail("bad format in", "network.txt");
    t->size = elements(t);
}

static void read_rule(FILE *f, Rule *r) {
    char line[4096], *token;
    if (!fgets(line, sizeof line, f)) fail("a rule without values in", "network.txt");
    token = strtok(line, " \n");
    if (!token) fail("a rule without a name in", "network.txt");
    strncpy(r->rule, token, sizeof r->rule - 1);
    static const char *lists[] = {"input_offsets", "input_multipliers", "input_shifts"};
    while ((token = strtok(NULL, " \n")) && r->keys < MAX_KEYS) {
        int k = r->keys++, is_list = 0;
        strncpy(r->key[k], token, sizeof r->key[k] - 1);
        for (int l = 0; l < 3; l++) is_list |= strcmp(token, lists[l]) == 0;
        r->count[k] = is_list ? atoi(strtok(NULL, " \n")) : 1;
        for (int v = 0; v < r->count[k] && v < MAX_LIST; v++) r->value[k][v] = strtoll(strtok(NULL, " \n"), NULL, 10);
    }
}

static i64 rule_list(const Rule *r, const char *key, int at) {
    for (int k = 0; k < r->keys; k++) if (strcmp(r->key[k], key) == 0) return r->value[k][at];
    fail("a rule without", key);
    return 0;
}
static i64 rule_value(const Rule *r, const char *key) { return rule_list(r, key, 0); }

static const Tensor *find(const Layer *l, const char *name) {
    for (int t = 0; t < l->tensors; t++) if (strcmp(l->tensor[t].name, name) == 0) return &l->tensor[t];
    return NULL;
}
static const Tensor *need(const Layer *l, const char *name) {
    const Tensor *t = find(l, name);
    if (!t) fail("a layer without the tensor", name);
    return t;
}
/* Entry c of a per-channel table; a per-tensor table has one entry for every channel. */
static i64 channel(const Tensor *t, int c) { return t->v[t->size == 1 ? 0 : c]; }

static void read_network(void) {
    FILE *f = fopen("network.txt", "r");
    char key[64], path[PATH];
    if (!f) fail("cannot open", "network.txt (run in the kit's folder)");
    Layer *l = NULL;
    while (fscanf(f, "%63s", key) == 1) {
        if (!strcmp(key, "images")) { if (fscanf(f, "%d", &images) != 1) fail("bad", key); }
        else if (!strcmp(key, "input")) { read_shape(f, &layers[0].out); if (fscanf(f, "%511s", layers[0].out_hex) != 1) fail("bad", key); }
        else if (!strcmp(key, "quantize")) {
            if (fscanf(f, "%lf %d %d %d %511s", &input_scale, &input_zero, &input_rounding, &input_float32, x_file) != 5) fail("bad", key);
        } else if (!strcmp(key, "layer")) {
            if (count == MAX_LAYERS) fail("too many layers in", "network.txt");
            l = &layers[++count];
            if (fscanf(f, "%d %31s", &l->index, l->op) != 2) fail("bad", key);
        } else if (!l) fail("a key before the first layer:", key);
        else if (!strcmp(key, "reads")) {
            if (fscanf(f, "%d", &l->reads) != 1 || l->reads > MAX_READS) fail("bad", key);
            for (int r = 0; r < l->reads; r++) if (fscanf(f, "%d", &l->read[r]) != 1) fail("bad", key);
        } else if (!strcmp(key, "out")) { read_shape(f, &l->out); if (fscanf(f, "%511s", l->out_hex) != 1) fail("bad", key); }
        else if (!strcmp(key, "kernel")) { if (fscanf(f, "%d %d", &l->kernel[0], &l->kernel[1]) != 2) fail("bad", key); }
        else if (!strcmp(key, "stride")) { if (fscanf(f, "%d %d", &l->stride[0], &l->stride[1]) != 2) fail("bad", key); }
        else if (!strcmp(key, "dilation")) { if (fscanf(f, "%d %d", &l->dilation[0], &l->dilation[1]) != 2) fail("bad", key); }
        else if (!strcmp(key, "pads")) { if (fscanf(f, "%d %d %d %d", &l->pads[0], &l->pads[1], &l->pads[2], &l->pads[3]) != 4) fail("bad", key); }
        else if (!strcmp(key, "groups")) { if (fscanf(f, "%d", &l->groups) != 1) fail("bad", key); }
        else if (!strcmp(key, "pad_value")) { if (fscanf(f, "%d", &l->pad_value) != 1) fail("bad", key); }
        else if (!strcmp(key, "lo")) { if (fscanf(f, "%d", &l->lo) != 1) fail("bad", key); }
        else if (!strcmp(key, "hi")) { if (fscanf(f, "%d", &l->hi) != 1) fail("bad", key); }
        else if (!strcmp(key, "table_first_input")) { if (fscanf(f, "%d", &l->table_first) != 1) fail("bad", key); }
        else if (!strcmp(key, "kind")) { if (fscanf(f, "%15s", l->kind) != 1) fail("bad", key); }
        else if (!strcmp(key, "count_include_pad")) { if (fscanf(f, "%d", &l->count_include_pad) != 1) fail("bad", key); }
        else if (!strcmp(key, "tensor")) {
            if (l->tensors == MAX_TENSORS) fail("too many tensors in layer", l->op);
            Tensor *t = &l->tensor[l->tensors++];
            if (fscanf(f, "%63s", t->name) != 1) fail("bad", key);
            read_shape(f, t);
            if (fscanf(f, "%511s", path) != 1) fail("bad", key);
            read_hex(path, t, t->size);
        } else if (!strcmp(key, "rescale")) { l->has_rescale = 1; read_rule(f, &l->rescale); }
        else if (!strcmp(key, "divide")) { l->has_divide = 1; read_rule(f, &l->divide); }
        else if (!strcmp(key, "end")) l = NULL;
        else fail("an unknown key in network.txt:", key);
    }
    fclose(f);
}

/* ---------------------------------------------------------------- rescaling rules */
/* The accumulator of output channel c to the output format, by the layer's rule. */
static i64 rescale(const Layer *l, i64 acc, int c) {
    const Rule *r = &l->rescale;
    if (!strcmp(r->rule, "cnnhw")) {  /* clamp(round_shift(acc * M[c], shift)); M from the negative table below 0 */
        const Tensor *negative = find(l, "rescale.negative_multipliers");
        i64 m = channel(negative && acc < 0 ? negative : need(l, "rescale.multipliers"), c);
        return clamp(round_shift(acc * m, (int)rule_value(r, "shift"), (int)rule_value(r, "rounding")),
                     rule_value(r, "lo"), rule_value(r, "hi"));
    }
    if (!strcmp(r->rule, "tflite")) {  /* clamp(acc * m0[c] * 2^(shift[c] - 31) + offset) */
        i64 m0 = channel(need(l, "rescale.multipliers"), c);
        int shift = (int)channel(need(l, "rescale.shifts"), c), total = 31 - shift;
        i64 scaled = rule_value(r, "single_rounding") ? floor_shift(acc * m0 + ((i64)1 << (total - 1)), total)
                                                      : multiply_by_quantized_multiplier(acc, m0, shift);
        return clamp(scaled + rule_value(r, "offset"), rule_value(r, "lo"), rule_value(r, "hi"));
    }
    if (!strcmp(r->rule, "onnxruntime")) {  /* clamp(nearbyint(float(acc) * scale[c]) + offset), in float32 */
        volatile float scale = ldexpf((float)channel(need(l, "rescale.mantissas"), c),
                                      -(int)channel(need(l, "rescale.exponents"), c));
        volatile float product = (float)acc * scale;
        return clamp((i64)nearbyintf(product) + rule_value(r, "offset"), rule_value(r, "lo"), rule_value(r, "hi"));
    }
    fail("an unknown rescaling rule:", r->rule);
    return 0;
}

/* An average: sum over the n elements of its window. */
static i64 divide(const Layer *l, i64 sum, i64 n) {
    const Rule *r = &l->divide;
    if (!strcmp(r->rule, "cnnhw_average"))  /* round_shift(sum * round(2^shift / n), shift) */
        return round_shift(sum * need(l, "divide.multipliers")->v[n], (int)rule_value(r, "shift"), (int)rule_value(r, "rounding"));
    /* "tflite_average": sum / n rounded half away from zero, then clamped */
    i64 magnitude = ((sum < 0 ? -sum : sum) + n / 2) / n;
    return clamp(sum < 0 ? -magnitude : magnitude, rule_value(r, "lo"), rule_value(r, "hi"));
}

/* ---------------------------------------------------------------- ops */
static i64 at(const Tensor *t, const i64 *v, int n, int c, int y, int x) {  /* v: a batch of t's shape */
    return v[(((i64)n * t->shape[0] + c) * t->shape[1] + y) * t->shape[2] + x];
}

static void conv(const Layer *l, const Tensor *in, const i64 *x, i64 *y) {
    const Tensor *w = need(l, "weight"), *b = need(l, "bias");
    int outs = w->shape[0], group_ins = w->shape[1], kh = w->shape[2], kw = w->shape[3];
    int group_outs = outs / l->groups, oh = l->out.shape[1], ow = l->out.shape[2], h = in->shape[1], wd = in->shape[2];
    for (int n = 0; n < images; n++)
        for (int o = 0; o < outs; o++)
            for (int r = 0; r < oh; r++)
                for (int s = 0; s < ow; s++) {
                    i64 acc = b->v[o];
                    int g = o / group_outs;
                    for (int c = 0; c < group_ins; c++)
                        for (int i = 0; i < kh; i++)
                            for (int j = 0; j < kw; j++) {
                                int row = r * l->stride[0] + i * l->dilation[0] - l->pads[0];
                                int col = s * l->stride[1] + j * l->dilation[1] - l->pads[1];
                                i64 value = row < 0 || row >= h || col < 0 || col >= wd ? l->pad_value
                                                                                      : at(in, x, n, g * group_ins + c, row, col);
                                acc += w->v[((i64)(o * group_ins + c) * kh + i) * kw + j] * value;
                            }
                    y[(((i64)n * outs + o) * oh + r) * ow + s] = rescale(l, acc, o);
                }
}

static void dense(const Layer *l, const Tensor *in, const i64 *x, i64 *y) {
    const Tensor *w = need(l, "weight"), *b = need(l, "bias");
    int outs = w->shape[0], ins = w->shape[1];
    (void)in;
    for (int n = 0; n < images; n++)
        for (int o = 0; o < outs; o++) {
            i64 acc = b->v[o];
            for (int i = 0; i < ins; i++) acc += w->v[(i64)o * ins + i] * x[(i64)n * ins + i];
            y[(i64)n * outs + o] = rescale(l, acc, o);
        }
}

/* Max pooling (padding and positions past it hold the format's minimum: they never win), or average
 * pooling: the sum of the window's input positions over the elements it counts (padding only with
 * count_include_pad, positions past the padding never). */
static void pool(const Layer *l, const Tensor *in, const i64 *x, i64 *y) {
    int channels = in->shape[0], h = in->shape[1], wd = in->shape[2], oh = l->out.shape[1], ow = l->out.shape[2];
    int is_max = !strcmp(l->kind, "max");
    for (int n = 0; n < images; n++)
        for (int c = 0; c < channels; c++)
            for (int r = 0; r < oh; r++)
                for (int s = 0; s < ow; s++) {
                    i64 best = lowest(in->bits, in->is_signed), sum = 0, counted = 0;
                    for (int i = 0; i < l->kernel[0]; i++)
                        for (int j = 0; j < l->kernel[1]; j++) {
                            int row = r * l->stride[0] + i * l->dilation[0] - l->pads[0];
                            int col = s * l->stride[1] + j * l->dilation[1] - l->pads[1];
                            if (row >= 0 && row < h && col >= 0 && col < wd) {
                                i64 value = at(in, x, n, c, row, col);
                                best = value > best ? value : best;
                                sum += value;
                                counted++;
                            } else if (row < h + l->pads[2] && col < wd + l->pads[3]) {
                                counted += l->count_include_pad;  /* padding, not past it */
                            }
                        }
                    y[(((i64)n * channels + c) * oh + r) * ow + s] = is_max ? best : divide(l, sum, counted);
                }
}

static void global_pool(const Layer *l, const Tensor *in, const i64 *x, i64 *y) {
    int channels = in->shape[0], area = in->shape[1] * in->shape[2];
    for (int n = 0; n < images; n++)
        for (int c = 0; c < channels; c++) {
            const i64 *v = x + ((i64)n * channels + c) * area;
            i64 best = v[0], sum = 0;
            for (int k = 0; k < area; k++) { best = v[k] > best ? v[k] : best; sum += v[k]; }
            y[(i64)n * channels + c] = !strcmp(l->kind, "max") ? best : divide(l, sum, area);
        }
}

/* The sum of the inputs at the output scale (cnnhw: one rounding; TFLite: each input rescaled from
 * (x + offset) << left_shift, the sum rescaled to the output). */
static void add(const Layer *l, const i64 **x, i64 *y) {
    const Rule *r = &l->rescale;
    for (i64 k = 0; k < (i64)images * l->out.size; k++) {
        i64 total = 0;
        if (!strcmp(r->rule, "cnnhw")) {
            for (int input = 0; input < l->reads; input++) total += x[input][k] * need(l, "rescale.multipliers")->v[input];
            y[k] = clamp(round_shift(total, (int)rule_value(r, "shift"), (int)rule_value(r, "rounding")),
                         rule_value(r, "lo"), rule_value(r, "hi"));
        } else {
            for (int input = 0; input < l->reads; input++)
                total += multiply_by_quantized_multiplier((x[input][k] + rule_list(r, "input_offsets", input))
                                                              * ((i64)1 << rule_value(r, "left_shift")),
                                                          rule_list(r, "input_multipliers", input),
                                                          (int)rule_list(r, "input_shifts", input));
            i64 out = multiply_by_quantized_multiplier(total, rule_value(r, "output_multiplier"), (int)rule_value(r, "output_shift"));
            y[k] = clamp(out + rule_value(r, "offset"), rule_value(r, "lo"), rule_value(r, "hi"));
        }
    }
}

/* Each input rescaled on its own, clamp(round_shift(x * M[k], shift)), then all along the channels. */
static void concat(const Layer *l, const Tensor **in, const i64 **x, i64 *y) {
    const Rule *r = &l->rescale;
    i64 out_size = l->out.size, offset = 0;
    for (int input = 0; input < l->reads; input++) {
        i64 m = need(l, "rescale.multipliers")->v[input], size = in[input]->size;
        for (int n = 0; n < images; n++)
            for (i64 k = 0; k < size; k++)
                y[n * out_size + offset + k] = clamp(round_shift(x[input][n * size + k] * m, (int)rule_value(r, "shift"),
                                                                 (int)rule_value(r, "rounding")),
                                                     rule_value(r, "lo"), rule_value(r, "hi"));
        offset += size;
    }
}

static void run_layer(const Layer *l, i64 **values, i64 *y) {
    const Tensor *in[MAX_READS];
    const i64 *x[MAX_READS];
    for (int r = 0; r < l->reads; r++) { in[r] = &layers[l->read[r]].out; x[r] = values[l->read[r]]; }
    i64 total = (i64)images * l->out.size;
    if (!strcmp(l->op, "Conv")) conv(l, in[0], x[0], y);
    else if (!strcmp(l->op, "Dense")) dense(l, in[0], x[0], y);
    else if (!strcmp(l->op, "MaxPool") || !strcmp(l->op, "AvgPool")) pool(l, in[0], x[0], y);
    else if (!strcmp(l->op, "GlobalMaxPool") || !strcmp(l->op, "GlobalAvgPool")) global_pool(l, in[0], x[0], y);
    else if (!strcmp(l->op, "Reshape")) memcpy(y, x[0], sizeof(i64) * (size_t)total);
    else if (!strcmp(l->op, "Clamp")) for (i64 k = 0; k < total; k++) y[k] = clamp(x[0][k], l->lo, l->hi);
    else if (!strcmp(l->op, "Add")) add(l, x, y);
    else if (!strcmp(l->op, "Concat")) concat(l, in, x, y);
    else if (find(l, "table")) for (i64 k = 0; k < total; k++) y[k] = find(l, "table")->v[x[0][k] - l->table_first];
    else fail("an unknown op:", l->op);
}

/* The only float step: clamp(round(x / scale) + zero_point), the division in float32 when the model's
 * quantizer does it so; rounding 0: half up, 1: half to even, 2: half away from zero. */
static i64 quantize(double x, const Tensor *format) {
    i64 lo = lowest(format->bits, format->is_signed), hi = highest(format->bits, format->is_signed);
    double steps = input_float32 ? (double)((float)x / (float)input_scale) : x / input_scale;
    steps = steps < lo - input_zero - 1 ? lo - input_zero - 1 : steps > hi - input_zero + 1 ? hi - input_zero + 1 : steps;
    double rounded = input_rounding == 0 ? floor(steps + 0.5) : input_rounding == 1 ? nearbyint(steps) : round(steps);
    return clamp((i64)rounded + input_zero, lo, hi);
}

static int check(const char *name, const Layer *l, const i64 *got) {
    Tensor expected = l->out;
    read_hex(l->out_hex, &expected, (i64)images * l->out.size);
    for (int n = 0; n < images; n++)
        for (i64 k = 0; k < l->out.size; k++) {
            i64 want = expected.v[n * l->out.size + k], value = got[n * l->out.size + k];
            if (want != value) {
                printf("%s: image %d, index %lld: expected %lld, got %lld\n", name, n, k, want, value);
                return 1;
            }
        }
    printf("%s: %lld values equal (%d images)\n", name, (i64)images * l->out.size, images);
    free(expected.v);
    return 0;
}

int main(void) {
    static i64 *values[MAX_LAYERS + 1];
    read_network();
    FILE *f = fopen(x_file, "r");
    if (!f) fail("cannot open", x_file);
    i64 size = (i64)images * layers[0].out.size;
    values[0] = malloc(sizeof(i64) * (size_t)size);
    for (i64 k = 0; k < size; k++) {
        double x;
        if (fscanf(f, "%lf", &x) != 1) fail("too few values in", x_file);
        values[0][k] = quantize(x, &layers[0].out);
    }
    fclose(f);
    if (check("input", &layers[0], values[0])) return 1;
    for (int k = 1; k <= count; k++) {
        values[k] = malloc(sizeof(i64) * (size_t)(images * layers[k].out.size));
        run_layer(&layers[k], values, values[k]);
        char name[16];
        snprintf(name, sizeof name, "layer %d", layers[k].index);
        if (check(name, &layers[k], values[k])) return 1;
    }
    printf("every layer equal on %d images\n", images);
    return 0;
}

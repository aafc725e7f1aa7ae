# Live R oracle for the ons2024 baseline (tests/test_ons2024.py).
#
# ONS's scripts (ONS-Health-modelling-hub/Excess_deaths, ons_weekly_ed.R and ons_monthly_ed.R) read
# an xlsx workbook with openxlsx, which Debian does not ship in the base R we install; this script
# re-implements their modelling step on a CSV in the same column layout, with the same rules:
# - trend: the position of each period within its series, ordered by period (ONS: ave(seq_along));
# - weekly season: the week with 53 recoded to 52 (factor); monthly: the month (factor) plus the
#   number of working days;
# - window for week (Y, W): week W+1 of Y-6 to week W of Y-1 (W in 52, 53: week 1 of Y-5 to week 52
#   of Y-1), written as ONS writes it with floor(Y - 51/52); monthly: trend - 71 to trend - 12;
# - COVID periods left out; glm(quasipoisson) with ONS's formula; predict(type="response", se.fit).
# Usage: Rscript ons2024_oracle.R weekly|monthly input.csv periods(comma separated) output.csv
args <- commandArgs(trailingOnly = TRUE)
mode <- args[1]
d <- read.csv(args[2], stringsAsFactors = FALSE)
periods <- as.numeric(strsplit(args[3], ",")[[1]])
has_geo <- length(unique(d$geography)) > 1

if (mode == "weekly") {
  d$season <- factor(ifelse(d$week == 53, 52, d$week))
  d$period <- d$year * 100 + d$week
  covid <- c(202014:202022, 202045:202053, 202101:202108)
} else {
  d$season <- factor(d$month)
  d$period <- d$year * 100 + d$month
  covid <- c(202004, 202005, 202011, 202012, 202101, 202102)
}
d$agegrp <- factor(d$agegrp)
d$agegrp_coarse <- factor(d$agegrp_coarse)
d$sex <- factor(d$sex)
d$geography <- factor(d$geography)
d <- d[order(d$agegrp, d$sex, d$geography, d$period), ]
d$trend <- ave(d$period, d$agegrp, d$sex, d$geography, FUN = seq_along)

rhs <- "agegrp + sex + trend + season"
if (has_geo) rhs <- "agegrp + sex + geography + trend + season"
if (mode == "monthly") rhs <- paste(rhs, "+ weekdays")
rhs <- paste(rhs, "+ agegrp_coarse:sex + agegrp_coarse:trend + agegrp_coarse:season + offset(log(population))")
form <- as.formula(paste("deaths ~", rhs))

out <- list()
for (ref in periods) {
  ref_year <- ref %/% 100
  ref_sub <- ref %% 100
  if (mode == "weekly") {
    end_week <- ifelse(ref_sub == 53, 52, ref_sub)
    t_end <- max(d$trend[d$year == floor(ref_year - (51 / 52)) & d$week == end_week])
    start_year <- ifelse(ref_sub %in% 52:53, floor(ref_year - 5 - (51 / 52)) + 1,
                         floor(ref_year - 5 - (51 / 52)))
    start_week <- ifelse(ref_sub %in% 52:53, 1, ref_sub + 1)
    t_start <- min(d$trend[d$year == start_year & d$week == start_week])
  } else {
    t_ref <- unique(d$trend[d$period == ref])
    t_end <- t_ref - 12
    t_start <- t_ref - 12 * 6 + 1
  }
  fitting <- d[d$trend %in% t_start:t_end & !(d$period %in% covid), ]
  m <- glm(form, family = quasipoisson, data = fitting)
  target <- d[d$period == ref, ]
  p <- predict(m, newdata = target, type = "response", se.fit = TRUE)
  out[[length(out) + 1]] <- data.frame(
    period = ref, agegrp = as.character(target$agegrp), sex = as.character(target$sex),
    geography = as.character(target$geography), d_hat = as.numeric(p$fit),
    se_d_hat = as.numeric(p$se.fit), dispersion = summary(m)$dispersion
  )
}
res <- do.call(rbind, out)
write.csv(res, args[4], row.names = FALSE)

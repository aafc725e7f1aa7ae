# Runs ONS's own weekly script (ONS-Health-modelling-hub/Excess_deaths, ons_weekly_ed.R, not stored
# here: the repository has no licence) on a CSV in its input layout and writes what its model step
# computed, unrounded, for tests/data/ons_script_weekly.csv.
#
# The script is run as its README says, statement by statement and unmodified, with its two
# parameters amended after their assignment (dir, ref_period) and install.packages() a no-op (the
# Debian package r-cran-openxlsx is installed, and there is no network). Its input workbook is
# written in its layout: sheet Table_1, a title and three note rows, the header on row 5, data from
# row 6 (the script drops the first four rows read). Its Windows paths (dir "\\" file) name a file
# "<dir>\<file>" on Linux, which is where the workbook is put and the output is read from.
# Before the script's aggregation overwrites `weekly_ed`, its per-series predictions (d_hat,
# se_d_hat: predict(type = "response", se.fit = TRUE) of its glm(quasipoisson)) are kept.
#
# Usage: Rscript ons_script_reference.R path/to/ons_weekly_ed.R input.csv 202053,202126 out.csv
#
# The stored file was made with ONS's script at commit 98dbb04 (R 4.2, Debian r-cran-openxlsx
# 4.2.5.2, which only this script needs; the tests read the stored output):
#   python -c "import sys; sys.path.insert(0, 'tests'); from _ons_synth import *; \
#     ons_layout(ons_script_synthetic()).to_csv('ons_input.csv', index=False)"
#   Rscript tests/r/ons_script_reference.R ons_weekly_ed.R ons_input.csv 202053,202126,202301 \
#     tests/data/ons_script_weekly.csv
# (about 7 minutes a week: the script reads the 222,560-row workbook on every run).
args <- commandArgs(trailingOnly = TRUE)
script <- args[1]
input <- read.csv(args[2], stringsAsFactors = FALSE)
refs <- as.numeric(strsplit(args[3], ",")[[1]])
suppressPackageStartupMessages(library(openxlsx))

work <- tempfile("ons")
dir.create(work)
run_dir <- file.path(work, "run")
wb <- createWorkbook()
addWorksheet(wb, "Table_1")
writeData(wb, "Table_1", "Table 1: synthetic deaths in the layout of dataset20240220.xlsx",
          startRow = 1)
writeData(wb, "Table_1", c("Note 1", "Note 2", "Note 3"), startRow = 2)
names(input) <- c("Year", "Week", "Age group", "Age group (coarse)", "Sex", "Geography",
                  "Deaths", "Population")
writeData(wb, "Table_1", input, startRow = 5)
saveWorkbook(wb, paste0(run_dir, "\\dataset20240220.xlsx"), overwrite = TRUE)

install.packages <- function(...) invisible(NULL)
exprs <- parse(script, keep.source = FALSE)
out <- list()
published <- list()
for (ref in refs) {
  kept <- NULL
  env <- new.env(parent = globalenv())
  for (e in exprs) {
    eval(e, env)
    txt <- paste(deparse(e), collapse = " ")
    if (grepl("^dir (=|<-)", txt)) assign("dir", run_dir, envir = env)
    if (grepl("^ref_period (=|<-)", txt)) assign("ref_period", ref, envir = env)
    if (is.null(kept) && exists("weekly_ed", envir = env, inherits = FALSE)) {
      w <- get("weekly_ed", envir = env)
      if (all(c("d_hat", "excess_deaths_var") %in% names(w))) kept <- w
    }
  }
  stopifnot(!is.null(kept))
  out[[length(out) + 1]] <- data.frame(
    period = ref, agegrp = as.character(kept$agegrp), sex = as.character(kept$sex),
    geography = as.character(kept$geography), deaths = kept$deaths, d_hat = kept$d_hat,
    se_d_hat = kept$se_d_hat
  )
  pub <- read.csv(paste0(run_dir, "\\weekly_ed_", ref, ".csv"), stringsAsFactors = FALSE)
  published[[length(published) + 1]] <- pub
}
write.csv(do.call(rbind, out), args[4], row.names = FALSE)
write.csv(do.call(rbind, published), sub("\\.csv$", "_published.csv", args[4]), row.names = FALSE)

-- Seed 001's target: expense refund forms from DingTalk Yida (scheme yida-refunds-to-mysql).
-- The scheme's SQL is a plain INSERT; the unique key on extend_processInstanceId is what makes
-- it idempotent: with idCheck on, a form that comes back after a crash hits its own duplicate
-- key and counts as already written.
CREATE DATABASE IF NOT EXISTS `finance` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;
USE `finance`;

CREATE TABLE IF NOT EXISTS `hc_dd_fktk` (
  `id`                       BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
  `extend_processInstanceId` VARCHAR(64)     NOT NULL COMMENT '明细id (Yida processInstanceId)',
  `order_no_new`             VARCHAR(64)     NOT NULL COMMENT '单号',
  `datetime_new`             DATE            NULL     COMMENT '时间',
  `qty_count`                INT             NULL     COMMENT '数量',
  `sales_count`              DECIMAL(18, 4)  NULL     COMMENT '金额',
  `status`                   VARCHAR(32)     NULL     COMMENT '状态',
  `Document_Type`            VARCHAR(32)     NULL     COMMENT '单据类型',
  `created_at`               DATETIME(6)     NOT NULL DEFAULT CURRENT_TIMESTAMP(6),
  PRIMARY KEY (`id`),
  UNIQUE KEY `uk_hc_dd_fktk_process_instance` (`extend_processInstanceId`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci;
